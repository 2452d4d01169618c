#!/usr/bin/perl
use strict;
use warnings;
print "Content-Type: text/plain\n\n";
print 'uid=', $<, "\neuid=", $>, "\ngid=", (split ' ', $()[0], "\n";
