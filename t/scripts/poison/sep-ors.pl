#!/usr/bin/perl
# $\ = "!" after the headers: every later print ends with "!".
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
$\ = "!";
print "line one\n";
print "line two\n";
