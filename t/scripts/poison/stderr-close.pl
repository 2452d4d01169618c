#!/usr/bin/perl
# STDERR closed.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage, STDERR closed\n";
close STDERR;
