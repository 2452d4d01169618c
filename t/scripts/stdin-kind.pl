#!/usr/bin/perl
# What fd 0 is while the script runs: a socket would be the daemon's own.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
print 'socket=', (-S STDIN ? 1 : 0), "\n";
print 'target=', (readlink('/proc/self/fd/0') // 'none'), "\n";
