#!/usr/bin/perl
# $| = 1 on STDOUT and on STDERR, left on.
use strict;
use warnings;

$| = 1;
select((select(STDERR), $| = 1)[0]);
print "Content-Type: text/plain\n\n";
print "autoflushed\n";
