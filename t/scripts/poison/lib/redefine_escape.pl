# A plain library file (no package line) that replaces CGI::escapeHTML:
# loaded with `do` by worker-sub-ways.pl.
no warnings 'redefine';
sub CGI::escapeHTML { return 'poisoned' }
1;
