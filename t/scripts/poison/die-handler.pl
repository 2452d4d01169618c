#!/usr/bin/perl
# A $SIG{__DIE__} handler that prints the page itself, left installed.
use strict;
use warnings;

$SIG{__DIE__} = sub { print "Content-Type: text/plain\n\ndie handler saw: $_[0]" };
die "poison handled die\n";
