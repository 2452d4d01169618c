#!/usr/bin/perl
# require of a script-relative library with its own package.
use strict;
use warnings;
no warnings 'once';
require "./lib/poison_withpkg.pl";

print "Content-Type: text/plain\n\n";
print 'loads: ', $PoisonWithPkg::loads, "\n";
print 'sub says: ', PoisonWithPkg::hello(), "\n";
