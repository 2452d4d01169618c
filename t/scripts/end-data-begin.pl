#!/usr/bin/perl
# BEGIN, END and __DATA__ behave as if the process were new on every request.
use strict;
use warnings;

our $begin_runs;
BEGIN { $begin_runs++ }
END { print "end-block-output\n" }

print "Content-Type: text/plain\n\n";
print "begin_runs=$begin_runs\n";
print "data: $_" while <DATA>;
print "main done\n";

__DATA__
line one
line two
