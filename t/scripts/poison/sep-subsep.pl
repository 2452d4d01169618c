#!/usr/bin/perl
# $; = "|": multi-dimensional hash keys.
use strict;
use warnings;

$; = '|';
my %h;
$h{1, 2} = 'x';
print "Content-Type: text/plain\n\n", join(',', keys %h), "\n";
