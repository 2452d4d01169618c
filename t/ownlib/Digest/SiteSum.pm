package Digest::SiteSum;
# A module of a site's own library directory whose top-level name (Digest::)
# no module of the worker has made yet: the script's compile makes it, and
# a module of the worker's loads into it later, at run time (Digest::MD5,
# t/scripts/check/own-lib-released.pl). It stays the script's.
use strict;
use warnings;

our $Count = 0;

sub bump { return ++$Count }

1;
