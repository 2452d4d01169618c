#!/usr/bin/perl
# Changes the separators, then dies at the top level before any output.
use strict;
use warnings;

$\ = '!';
$" = ':';
die "poison die at top level\n";
