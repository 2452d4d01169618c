#!/usr/bin/perl
# $" = ":": arrays interpolated into strings.
use strict;
use warnings;

$" = ':';
my @a = (1, 2, 3);
print "Content-Type: text/plain\n\n@a\n";
