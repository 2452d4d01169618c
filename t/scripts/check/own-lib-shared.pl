#!/usr/bin/perl
# A module of the script's own library directory inside a top-level name a
# module of the worker owns (Data::SiteCounter beside Data::Dumper), and a
# directory handle opened on a package glob: each request sees them as a
# new process does (count 0, nothing kept open), whatever the last left.
# Its s///e (code in a pattern) once kept the compiled script's source file
# open in a registry worker.
use strict;
use warnings;
use Cwd ();
use Data::Dumper ();
use FindBin;
use lib Cwd::abs_path("$FindBin::Bin/../../ownlib");
use Data::SiteCounter qw($Shared);

my $before = sprintf 'count=%d shared=%s connection=%s',
    $Data::SiteCounter::Count, $Shared // 'undef', Data::SiteCounter::connection();
Data::SiteCounter::bump();
my $dir = do { no warnings 'io'; defined telldir(DIR) ? 'open' : 'closed' };
opendir DIR, $FindBin::Bin or die "opendir $FindBin::Bin: $!\n";
(my $shown = "$before dir=$dir") =~ s/(\w+)=/uc($1) . '='/ge;
print "Content-Type: text/plain\n\n$shown\n";
