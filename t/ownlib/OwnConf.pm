package OwnConf;
# A module of a site's own library directory, outside the daemon's roots
# and @INC (t/scripts/poison/own-lib-state.pl and check/own-lib.pl add it
# with `use lib`), keeping its settings in a package hash as BackupPC's
# configuration does: a request that switches them (load_host) must not
# leave them switched for the next.
use strict;
use warnings;

our %Conf = (Lang => 'en', Header => 'plain');
our $Loads = 0;
$Loads++;

sub load_host {
    my ($host) = @_;
    @Conf{qw(Lang Header)} = ('de', "host $host") if $host eq 'alpha';
    return;
}

1;
