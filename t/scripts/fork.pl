#!/usr/bin/perl
# The script forks; the child's exit (or die) ends the child only, never
# returning it into the worker's request loop.
use strict;
use warnings;

my ($how) = ($ENV{QUERY_STRING} || '') =~ /how=(\w+)/;
$how ||= 'exit';
$| = 1;
print "Content-Type: text/plain\n\n";
my $pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    print "child $$\n";
    die "child-die-marker\n" if $how eq 'die';
    exit 3;
}
waitpid $pid, 0;
print 'child status=', $? >> 8, "\n";
print "parent $$ done\n";
