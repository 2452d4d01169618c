#!/usr/bin/perl
# STDERR re-opened onto STDOUT (2>&1), left so.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
open STDERR, '>&', \*STDOUT or die "dup: $!";
print STDERR "stderr into the page\n";
