#!/usr/bin/perl
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
$undeclared_variable_marker = 1;
