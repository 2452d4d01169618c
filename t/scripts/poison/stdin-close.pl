#!/usr/bin/perl
# STDIN closed (and a read attempted).
use strict;
use warnings;
no warnings qw(closed unopened);

close STDIN;
my $line = <STDIN>;
print "Content-Type: text/plain\n\n", 'read after close: ', (defined $line ? 'data' : 'nothing'), "\n";
