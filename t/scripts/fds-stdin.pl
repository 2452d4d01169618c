#!/usr/bin/perl
# A child process reads the request body from fd 0.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
print "body follows\n";
system 'cat';
print "\nbody done\n";
