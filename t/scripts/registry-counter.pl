#!/usr/bin/perl
# Says when it is compiled (a BEGIN block, to the log) and counts its runs
# in a package global: in perlrun it is compiled every request; in registry
# once, and the global starts each run as it was after the compile.
use strict;
use warnings;
BEGIN { print STDERR "registry-counter compiled\n" }
our $runs;
$runs++;
print "Content-Type: text/plain\n\nruns=$runs\n";
