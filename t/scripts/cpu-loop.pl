#!/usr/bin/perl
# Spins on the CPU for ?N seconds (default 30), never writing meanwhile.
# With "stubborn" in the query it ignores SIGPIPE, so an in-process stop
# cannot reach it.
use strict;
use warnings;
use Time::HiRes qw(time);

my $query = $ENV{QUERY_STRING} || '';
$SIG{PIPE} = 'IGNORE' if $query =~ /stubborn/;
my ($secs) = $query =~ /(\d+)/;
$secs = 30 unless defined $secs;
$| = 1;
print "Content-Type: text/plain\n\n";
print "start $$\n";
my $end = time + $secs;
my $n = 0;
$n++ while time < $end;
print STDERR "cpu-loop finished\n";
print "done $$ $n\n";
