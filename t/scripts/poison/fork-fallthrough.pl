#!/usr/bin/perl
# A child that does not exit: it runs the rest of the script (and its END
# block) too, as a forked CGI process does.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
my $pid = fork;
die "fork: $!" unless defined $pid;
waitpid $pid, 0 if $pid;
print 'after fork in the ', ($pid ? 'parent' : 'child'), "\n";
END { print 'END in the ', ($pid ? 'parent' : 'child'), "\n" }
