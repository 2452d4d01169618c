#!/usr/bin/perl
use strict;
use warnings;
print "Content-Type: text/plain\n\npid=$$ rand=", int(rand(1e9)), "\n";
