#!/usr/bin/perl
# require of a .pm in the script's lib/ that has no package line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
require PoisonNoPkgPm;

print "Content-Type: text/plain\n\n";
print 'sub says: ', poison_nopkg_pm_sub(), "\n";
