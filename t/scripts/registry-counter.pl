#!/usr/bin/perl
# Counts its runs in a package global: 1, 2, 3... when compiled once and
# reused (registry), always 1 when compiled per request (perlrun).
use strict;
use warnings;
our $runs;
$runs++;
print "Content-Type: text/plain\n\nruns=$runs\n";
