#!/usr/bin/perl
# Sends its headers at once, sleeps ?N seconds (default 2), then finishes.
use strict;
use warnings;
use Time::HiRes qw(sleep);

my ($secs) = ($ENV{QUERY_STRING} || '') =~ /([\d.]+)/;
$secs = 2 unless defined $secs;
$| = 1;
print "Content-Type: text/plain\n\n";
print "start $$\n";
sleep $secs;
print "done $$\n";
