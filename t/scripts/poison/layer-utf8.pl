#!/usr/bin/perl
# :utf8 on STDOUT, the most common way legacy scripts print wide characters.
use strict;
use warnings;

binmode STDOUT, ':utf8';
print "Content-Type: text/plain; charset=utf-8\n\n";
print "smile \x{263a}\n";
