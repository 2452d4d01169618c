#!/usr/bin/perl
# local $0 at file scope, read from a sub.
use strict;
use warnings;

local $0 = 'poison-local-dollar0';
sub name { return $0 }
print "Content-Type: text/plain\n\n\$0 is ", name(), "\n";
