#!/usr/bin/perl
# A child that dies.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
my $pid = fork;
die "fork: $!" unless defined $pid;
if (!$pid) {
    print "child about to die\n";
    die "poison child die\n";
}
waitpid $pid, 0;
print 'child exit code: ', $? >> 8, "\n";
