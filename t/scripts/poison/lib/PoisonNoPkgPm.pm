# A .pm without a package line (poison/require-pm-nopkg.pl).
sub poison_nopkg_pm_sub { return 'pm without package' }
1;
