#!/usr/bin/perl
# Sets the input record separator for good (slurp mode) and reads its own
# DATA with it.
use strict;
use warnings;

$/ = undef;
my $all = <DATA>;
print "Content-Type: text/plain\n\n", 'data lines: ', scalar(() = $all =~ /\n/g), "\n";
__DATA__
one
two
