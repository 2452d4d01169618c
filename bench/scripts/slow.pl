#!/usr/bin/perl
# The "mixed" scenario's slow request: 0.3 s of waiting (a slow query, a
# remote call), then a line.
use strict;
use warnings;
select undef, undef, undef, 0.3;
print "Content-Type: text/plain\n\nslow.pl: slept 0.3 s\n";
