#!/usr/bin/perl
# Unbuffered output with pauses: the client must see each tick as it comes.
use strict;
use warnings;
use Time::HiRes qw(sleep time);

$| = 1;
print "Content-Type: text/plain\n\n";
for my $i (1 .. 5) {
    printf "tick %d %.3f\n", $i, time;
    sleep 0.4;
}
