#!/usr/bin/perl
# A process with no children: wait() returns -1 at once, as in a new CGI
# process (a child the worker kept for itself would make it wait for ever).
use strict;
use warnings;

my $got = wait;
print "Content-Type: text/plain\n\n", "wait=$got\n";
