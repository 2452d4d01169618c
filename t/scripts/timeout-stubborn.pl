#!/usr/bin/perl
# Ignores every attempt to stop it: the worker must be replaced.
use strict;
use warnings;
$SIG{PIPE} = 'IGNORE';
$| = 1;
print "Content-Type: text/plain\n\nstubborn\n";
sleep 1 for 1 .. 30;
print STDERR "timeout-stubborn finished\n";
