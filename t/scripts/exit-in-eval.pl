#!/usr/bin/perl
# exit inside eval {} must still end the script (it is not an exception).
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
print "start\n";
eval { exit 4; 1 } or print "eval caught: $@\n";
print "after eval\n";
