#!/usr/bin/perl
# Seeds rand with a constant, as a script wanting repeatable output may: the
# next script's rand must not follow on from that seed.
use strict;
use warnings;
srand(42);
print "Content-Type: text/plain\n\n", join(' ', map { int rand 1000 } 1 .. 3), "\n";
