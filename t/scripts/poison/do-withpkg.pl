#!/usr/bin/perl
# do FILE of a file with its own package and a load counter.
use strict;
use warnings;
no warnings 'once';

do "./lib/poison_do_pkg.pl" or die "do: $@ $!";
print "Content-Type: text/plain\n\n";
print 'runs: ', $PoisonDoPkg::runs, "\n";
