#!/usr/bin/perl
# The common autoflush idiom, half done: STDERR left selected, autoflushed.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage\n";
select STDERR;
$| = 1;
