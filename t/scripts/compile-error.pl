#!/usr/bin/perl
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
my $x = ;
print "not reached\n";
