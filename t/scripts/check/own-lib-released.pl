#!/usr/bin/perl
# A module of the script's own library directory whose top-level name
# (Digest::) a module of the worker loads into at run time (Digest::MD5):
# the site module still starts each request as loaded.
use strict;
use warnings;
use Cwd ();
use FindBin;
use lib Cwd::abs_path("$FindBin::Bin/../../ownlib");
use Digest::SiteSum;

my $before = $Digest::SiteSum::Count;
Digest::SiteSum::bump();
require Digest::MD5;
print "Content-Type: text/plain\n\ncount before=$before md5=", Digest::MD5::md5_hex('x'), "\n";
