#!/usr/bin/perl
# Dies before printing anything: the client must get a 500, the log the
# message with file and line.
use strict;
use warnings;

my $x = 1;
die "intentional-die-marker" if $x;
print "Content-Type: text/plain\n\nnot reached\n";
