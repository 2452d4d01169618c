#!/usr/bin/perl
# Pushes an encoding layer on STDOUT (removed again before the next request).
use strict;
use warnings;

binmode STDOUT, ':encoding(UTF-8)';
print "Content-Type: text/plain; charset=utf-8\n\n";
print "smile=\x{263a}\n";
