#!/usr/bin/perl
# $, = "-": print's list items get joined with it.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
$, = '-';
print 'a', 'b', "c\n";
