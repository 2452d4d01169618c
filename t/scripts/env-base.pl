#!/usr/bin/perl
use strict;
use warnings;
print "Content-Type: text/plain\n\n";
print "$_=", ($ENV{$_} // 'unset'), "\n" for qw(PATH FCGI_SPAWN_TEST_SECRET SITE_MODE QUERY_STRING);
