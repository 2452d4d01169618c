#!/usr/bin/perl
# use of a module in the script's lib/ (a package of its own) that counts
# how often it was loaded.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PoisonPkgPm;

print "Content-Type: text/plain\n\n";
print 'loads: ', $PoisonPkgPm::loads, "\n";
print 'sub says: ', PoisonPkgPm::hello(), "\n";
