#!/usr/bin/perl
# Reads at most 5 bytes of the body and says what it got.
use strict;
use warnings;

my $got = '';
read STDIN, $got, 5;
print "Content-Type: text/plain\n\n", "read=[$got]\n";
