#!/usr/bin/perl
# A syntax error: nothing runs, a CGI server answers 500.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
my %h = (a => 1;
print "not reached\n";
