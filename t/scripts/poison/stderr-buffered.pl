#!/usr/bin/perl
# Gives STDERR a buffering layer of its own (as Capture::Tiny's re-layering
# does), then prints to it: the line is held until the process ends.
use strict;
use warnings;

binmode STDERR, ':raw:perlio';
print STDERR "buffered stderr line\n";
print "Content-Type: text/plain\n\nstderr layers: ", join(',', PerlIO::get_layers(*STDERR)), "\n";
