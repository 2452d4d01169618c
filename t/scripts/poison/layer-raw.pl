#!/usr/bin/perl
# binmode STDOUT with no layer (:raw), then bytes of every value.
use strict;
use warnings;

binmode STDOUT;
print "Content-Type: application/octet-stream\n\n";
print join('', map { chr } 0 .. 255), "\n";
