package OwnPage;
# A page module of a site's own library, loaded at run time as BackupPC
# loads its pages, reading the site's configuration with `do` into its own
# package hash. A module of the system keeps a reference to the package
# (as long-lived objects of a real application may), so the package one
# request made is still alive when the next request makes its own: the
# configuration must land in the live one (t/53).
use strict;
use warnings;
use File::Spec ();

push @File::Spec::FCGI_SPAWN_TEST_KEEP, \%OwnPage::;
our %Conf;

sub read_conf {
    my ($file) = @_;
    %Conf = ();
    do $file;
    return {%Conf};
}

1;
