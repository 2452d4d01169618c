#!/usr/bin/perl
# Prints its headers from BEGIN, then fails to compile: the client gets the
# headers and nothing else.
use strict;
use warnings;

BEGIN { $| = 1; print "Content-Type: text/plain\n\nfrom BEGIN\n" }
my $x = ;
