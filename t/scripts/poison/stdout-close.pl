#!/usr/bin/perl
# A complete page, then STDOUT closed.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage, then close STDOUT\n";
close STDOUT;
