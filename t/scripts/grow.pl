#!/usr/bin/perl
# Grows its worker by ?N MiB (default 80) of its own memory that stays
# after the request, as a leak does (64 KiB strings: the allocator keeps
# them when they are freed), and prints the worker's pid.
use strict;
use warnings;

my ($mib) = ($ENV{QUERY_STRING} || '') =~ /(\d+)/;
$mib = 80 unless defined $mib;
push @main::leak, map { 'x' x 65536 } 1 .. $mib * 16;
print "Content-Type: text/plain\r\n\r\n";
print "grown $$\n";
