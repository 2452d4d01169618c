#!/usr/bin/perl
# $| = 1 on STDOUT, left on.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
print "autoflushed\n";
