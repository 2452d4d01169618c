#!/usr/bin/perl
# Logs a marker (?m=...) on STDERR, so a test can tell whether it ran.
use strict;
use warnings;

my ($m) = ($ENV{QUERY_STRING} || '') =~ /m=(\w+)/;
print STDERR 'marker-ran-', (defined $m ? $m : 'none'), "\n";
print "Content-Type: text/plain\n\nmarker\n";
