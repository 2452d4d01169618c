#!/usr/bin/perl
# Grows its worker by ?N MiB (default 80) that stays after the request, as
# a real leak does: the data hangs off a reference cycle, which perl never
# frees, so neither the namespace clean-up nor a heap trim gets it back.
# Prints the worker's pid.
use strict;
use warnings;

my ($mib) = ($ENV{QUERY_STRING} || '') =~ /(\d+)/;
$mib = 80 unless defined $mib;
my $leak = { data => [ map { 'x' x 65536 } 1 .. $mib * 16 ] };
$leak->{self} = $leak;
print "Content-Type: text/plain\r\n\r\n";
print "grown $$\n";
