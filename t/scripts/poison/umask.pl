#!/usr/bin/perl
# Changes the umask.
use strict;
use warnings;

umask 027;
print "Content-Type: text/plain\n\numask now ", sprintf('%04o', umask), "\n";
