#!/usr/bin/perl
# die three subs deep, before any output.
use strict;
use warnings;

sub inner { die "poison die in sub\n" }
sub middle { inner() }
sub outer { middle() }
outer();
print "Content-Type: text/plain\n\nnot reached\n";
