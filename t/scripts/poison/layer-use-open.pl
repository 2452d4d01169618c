#!/usr/bin/perl
# use open qw(:std :utf8): layers on all three STD handles at compile time.
use strict;
use warnings;
use open qw(:std :utf8);

print "Content-Type: text/plain; charset=utf-8\n\n";
print "open pragma \x{263a}\n";
