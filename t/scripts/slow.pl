#!/usr/bin/perl
# Slow two subs deep: outer() calls inner(), which sleeps ?N seconds
# (default 2) and then spins for 0.5 s more, and the script finishes.
use strict;
use warnings;
use Time::HiRes qw(sleep time);

my ($secs) = ($ENV{QUERY_STRING} || '') =~ /([\d.]+)/;
$secs = 2 unless defined $secs;

sub inner {
    sleep $secs;
    my $until = time + 0.5;
    1 while time < $until;
    return 'done';
}

sub outer {
    my $r = inner();
    return $r;
}

print "Content-Type: text/plain\r\n\r\n";
print outer(), " $$\n";
