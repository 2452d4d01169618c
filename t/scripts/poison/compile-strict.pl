#!/usr/bin/perl
# Fails `use strict` at compile time (issue 8, seen 1: one compile error
# poisoned the worker's restore for the rest of its life).
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
$poison_undeclared_variable = 1;
print "not reached\n";
