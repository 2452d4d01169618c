#!/usr/bin/perl
# Writes a line every 0.2 s for 10 s and logs each step, so a test can see
# that an aborted or abandoned request stops at its next write.
use strict;
use warnings;
use Time::HiRes qw(sleep);

$| = 1;
print "Content-Type: text/plain\n\n";
for my $i (1 .. 50) {
    print "line $i\n";
    print STDERR "slow-writer step $i\n";
    sleep 0.2;
}
print STDERR "slow-writer finished\n";
