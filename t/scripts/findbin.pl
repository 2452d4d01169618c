#!/usr/bin/perl
use strict;
use warnings;
use FindBin;

print "Content-Type: text/plain\n\n";
print "bin=$FindBin::Bin\n";
print 'file=', __FILE__, "\n";
