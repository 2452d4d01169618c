#!/usr/bin/perl
# Prints a complete page, then exits from inside a sub with the code given
# as ?code=N; nothing after the exit may run.
use strict;
use warnings;

my ($code) = ($ENV{QUERY_STRING} || '') =~ /code=(\d+)/;
$code = 0 unless defined $code;

sub leave { my ($c) = @_; exit $c }

print "Content-Type: text/plain\n\n";
print "before exit\n";
leave($code);
print "after exit\n";
