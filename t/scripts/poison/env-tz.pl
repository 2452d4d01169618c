#!/usr/bin/perl
# TZ set and tzset called: libc's idea of the local time zone changes.
use strict;
use warnings;
use POSIX ();

$ENV{TZ} = 'POISON-9';
POSIX::tzset();
print "Content-Type: text/plain\n\n", 'epoch in local time: ', scalar(localtime 0), "\n";
