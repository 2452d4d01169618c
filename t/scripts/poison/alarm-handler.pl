#!/usr/bin/perl
# An alarm left pending with a handler that prints.
use strict;
use warnings;

$SIG{ALRM} = sub { print "alarm handler ran\n" };
alarm 1;
print "Content-Type: text/plain\n\nalarm with handler set\n";
