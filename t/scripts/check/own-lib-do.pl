#!/usr/bin/perl
# A module of the script's own library, required at run time, that `do`es
# a configuration file into its own package: the values reach the module
# as in a new process, request after request.
use strict;
use warnings;
use Cwd ();
use FindBin;
use lib Cwd::abs_path("$FindBin::Bin/../../ownlib");

my $page = 'OwnPage';
require "$page.pm";
my $conf = OwnPage::read_conf("$FindBin::Bin/lib/own_conf.pl");
print "Content-Type: text/plain\n\nlanguage=", $conf->{Language} // 'undef', "\n";
