#!/usr/bin/perl
# A complete page, then exit with a code (?code=N, default 3) from a sub.
use strict;
use warnings;

my ($code) = ($ENV{QUERY_STRING} || '') =~ /code=(\d+)/;
$code = 3 unless defined $code;
sub leave { exit $_[0] }
print "Content-Type: text/plain\n\npage, then exit $code\n";
leave($code);
print "not reached\n";
