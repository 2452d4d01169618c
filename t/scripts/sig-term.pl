#!/usr/bin/perl
# Sets its own TERM handler (which would swallow a TERM), then takes its
# time: neither may keep its worker from stopping after the request.
use strict;
use warnings;
use Time::HiRes qw(sleep);

$SIG{TERM} = sub { print "got TERM\n" };
$| = 1;
print "Content-Type: text/plain\n\n";
print "start $$\n";
sleep 0.1 for 1 .. 15;
print "done $$\n";
