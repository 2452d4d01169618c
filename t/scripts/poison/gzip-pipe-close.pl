#!/usr/bin/perl
# The repository-browser way of gzipping a page: headers on STDOUT, the body
# through `| gzip -c` selected, closed at the end (issue 8, seen 3).
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\nContent-Encoding: gzip\n\n";
open my $gz, '|-', 'gzip', '-c', '-n' or die "gzip: $!";
select $gz;
print "line $_ of a gzipped page\n" for 1 .. 50;
close $gz or die "close gzip: $! $?";
select STDOUT;
