# --isolation-for GLOB=MODE: scripts matching the glob run in registry mode,
# the others keep the daemon's default (perlrun).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

sub compiles { my ($d) = @_; return scalar(() = $d->log_text =~ /registry-counter compiled/g) }

my $d = start_daemon(workers => 1, args => ['--isolation-for', scripts_dir() . '/registry-*.pl=registry']);
my @reg = map { scalar fcgi_request($d, 'registry-counter.pl') } 1 .. 3;
like $_, qr/^runs=1$/m, 'matching script: its global starts from scratch' for @reg;
is compiles($d), 1, 'matching script: registry, compiled once for three requests';
my @run = map { scalar fcgi_request($d, 'counter.pl') } 1 .. 2;
like $_, qr/^hits=1$/m, 'other script: fresh globals every time' for @run;
$d->stop;

my $d2 = start_daemon(workers => 1);
like scalar(fcgi_request($d2, 'registry-counter.pl')), qr/^runs=1$/m, 'without the rule: runs=1' for 1 .. 3;
is compiles($d2), 3, 'without the rule: perlrun, compiled every request';
$d2->stop;

my $bad = eval { start_daemon(workers => 1, args => ['--isolation-for', '/srv/*.pl'], timeout => 3); 1 };
ok !$bad, 'a rule without =MODE is refused';
like $@, qr/isolation_for: "\/srv\/\*\.pl" is not GLOB=MODE/, 'with a message naming the setting';
done_testing;
