#!/usr/bin/perl
# $! and $? as a script sees them: clear when it starts, $! untouched by
# prints that succeeded (perl's die exits with $! when it is set, else with
# $? >> 8, so a child that dies reports them as its exit status).
use strict;
use warnings;

my $at_start = $! + 0;
my $status_at_start = $?;
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
print "child status at start=$status_at_start\n";
print 'child that died exited with ', $? >> 8, "\n";
