#!/usr/bin/perl
# A child that prints and exits with a code; the parent reports it.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
my $pid = fork;
die "fork: $!" unless defined $pid;
if (!$pid) {
    print "child says hello\n";
    exit 3;
}
waitpid $pid, 0;
print 'child exit code: ', $? >> 8, "\n";
