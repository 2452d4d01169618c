#!/usr/bin/perl
# STDOUT closed before anything is printed: no output at all.
use strict;
use warnings;
no warnings 'closed';

close STDOUT;
print "Content-Type: text/plain\n\nlost\n";
