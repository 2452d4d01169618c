#!/usr/bin/perl
# STDERR made a copy of STDOUT (2>&1), then both printed in turn: a new
# process's STDERR is unbuffered, so the lines come in the order printed.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
open STDERR, '>&', \*STDOUT or die "dup: $!";
for my $n (1 .. 2) {
    print STDERR "$n stderr\n";
    print "$n stdout\n";
}
