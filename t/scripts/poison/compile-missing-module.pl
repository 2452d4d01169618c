#!/usr/bin/perl
# use of a module that does not exist.
use strict;
use warnings;
use Poison::No::Such::Module;

print "Content-Type: text/plain\n\nnot reached\n";
