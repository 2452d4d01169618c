#!/usr/bin/perl
# Prints the pid of the process that ran it (the worker).
use strict;
use warnings;

print "Content-Type: text/plain\r\n\r\n";
print "$$\n";
