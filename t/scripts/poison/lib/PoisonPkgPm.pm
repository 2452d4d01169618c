package PoisonPkgPm;
# A module of the site (poison/require-pm-pkg.pl) that counts its loads.
use strict;
use warnings;
our $loads;
$loads++;
sub hello { return 'site module' }
1;
