#!/usr/bin/perl
# ?code=N: ends with no output and exit status N (?how=_exit: through
# POSIX::_exit, no END blocks, no perl exit at all). Without: a page.
use strict;
use warnings;
use POSIX ();

my %q = map { split /=/, $_, 2 } split /&/, $ENV{QUERY_STRING} || '';
if (!defined $q{code}) {
    print "Content-Type: text/plain\n\nno code given\n";
    exit 0;
}
POSIX::_exit($q{code}) if ($q{how} || '') eq '_exit';
exit $q{code};
