# The checker's own library under the poisoner's relative name
# (check/require-relative.pl).
our $poison_nopkg_var = 'set by the check library';
sub poison_nopkg_sub { return 'check library' }
1;
