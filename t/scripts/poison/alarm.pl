#!/usr/bin/perl
# An alarm left pending, with the default SIGALRM action (terminate): a
# CGI process has exited long before it fires.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\nalarm set\n";
alarm 2;
