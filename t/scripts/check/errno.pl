#!/usr/bin/perl
# $! as a script sees it: clear when it starts and after prints that
# succeeded (perl's die exits with $! when it is set, so a child that dies
# reports it as its exit status).
use strict;
use warnings;

my $at_start = $! + 0;
$| = 1;
print "Content-Type: text/plain\n\n";
my $after_header = $! + 0;
print 'x' x 200_000, "\n";
my $after_big_print = $! + 0;
my $pid = fork // die "fork: $!";
if (!$pid) {
    die "child dies\n";
}
waitpid $pid, 0;
print "errno at start=$at_start after header=$after_header after big print=$after_big_print\n";
print 'child that died exited with ', $? >> 8, "\n";
