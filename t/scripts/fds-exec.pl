#!/usr/bin/perl
# A forked child execs a program whose output is the rest of the page; the
# response ends only when every holder of stdout has closed it.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
print "parent\n";
my $pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    exec 'sh', '-c', 'sleep 0.3; echo exec-child-output' or POSIX::_exit(127);
}
waitpid $pid, 0;
print "parent after child\n";
