#!/usr/bin/perl
# Sleeps ?N seconds with plain sleep() and says how long it really slept:
# a signal reaching the worker would cut the sleep short.
use strict;
use warnings;
use Time::HiRes qw(time);

my ($secs) = ($ENV{QUERY_STRING} || '') =~ /(\d+)/;
$secs = 2 unless defined $secs;
$| = 1;
print "Content-Type: text/plain\n\n";
print "start $$\n";
my $t0 = time;
sleep $secs;
printf "slept %.2f\n", time - $t0;
print "done $$\n";
