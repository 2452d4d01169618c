#!/usr/bin/perl
# Changes directory.
use strict;
use warnings;

chdir '/tmp' or die "chdir: $!";
print "Content-Type: text/plain\n\nnow in /tmp\n";
