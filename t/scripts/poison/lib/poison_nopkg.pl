# Library without a package line (poison/require-nopkg.pl).
our $poison_nopkg_var = 'set by the poison library';
sub poison_nopkg_sub { return 'poison library' }
1;
