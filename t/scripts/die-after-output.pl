#!/usr/bin/perl
# Dies after the headers and part of the body went out: the page stays as it
# is, the log gets the message.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
print "partial body\n";
die "late-die-marker\n";
