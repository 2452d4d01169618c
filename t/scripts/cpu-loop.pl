#!/usr/bin/perl
# Spins on the CPU for ?N seconds (default 30), never writing meanwhile.
use strict;
use warnings;
use Time::HiRes qw(time);

my ($secs) = ($ENV{QUERY_STRING} || '') =~ /(\d+)/;
$secs = 30 unless defined $secs;
$| = 1;
print "Content-Type: text/plain\n\n";
print "start $$\n";
my $end = time + $secs;
my $n = 0;
$n++ while time < $end;
print "done $$ $n\n";
