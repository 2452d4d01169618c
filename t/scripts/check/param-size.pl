#!/usr/bin/perl
# The length of the HTTP_X_BIG param and its last bytes.
use strict;
use warnings;

my $big = $ENV{HTTP_X_BIG} // '';
print "Content-Type: text/plain\n\n", 'length=', length $big, ' tail=', substr($big, -8), "\n";
