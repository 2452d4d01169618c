#!/usr/bin/perl
# die inside BEGIN, after BEGIN changed global state.
use strict;
use warnings;

BEGIN { $/ = 'X'; $, = '-' }
BEGIN { die "poison BEGIN die\n" }
print "Content-Type: text/plain\n\nnot reached\n";
