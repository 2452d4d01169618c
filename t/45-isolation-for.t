# --isolation-for GLOB=MODE: scripts matching the glob run in registry mode,
# the others keep the daemon's default (perlrun).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1, args => ['--isolation-for', scripts_dir() . '/registry-*.pl=registry']);
my @reg = map { scalar fcgi_request($d, 'registry-counter.pl') } 1 .. 3;
like $reg[$_ - 1], qr/^runs=$_$/m, "matching script: compiled once, run $_" for 1 .. 3;
my @run = map { scalar fcgi_request($d, 'counter.pl') } 1 .. 2;
like $_, qr/^hits=1$/m, 'other script: perlrun, fresh globals every time' for @run;
$d->stop;

my $d2 = start_daemon(workers => 1);
like scalar(fcgi_request($d2, 'registry-counter.pl')), qr/^runs=1$/m, 'without the rule: perlrun' for 1 .. 2;
$d2->stop;

my $bad = eval { start_daemon(workers => 1, args => ['--isolation-for', '/srv/*.pl'], timeout => 3); 1 };
ok !$bad, 'a rule without =MODE is refused';
like $@, qr/isolation_for: "\/srv\/\*\.pl" is not GLOB=MODE/, 'with a message naming the setting';
done_testing;
