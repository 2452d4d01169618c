# --idle-timeout 0 means no limit, also for a kept connection the master
# watches after a busy worker handed it back: it stays open and serves its
# next request (the master used to close it at once).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use FcgiSpawn::Test;

local $SIG{PIPE} = 'IGNORE';
my $d = start_daemon(workers => 1, args => [ '--idle-timeout', 0 ]);
my $kept = raw_connect($d);
print {$kept} fcgi_request_bytes(1, 'pid.pl', keep_conn => 1);
my ($recs) = read_records($kept, timeout => 5);
ok collect_response($recs, 1)->{ended}, 'a kept connection is answered';

# The only worker turns busy with another connection: it hands the kept
# one back to the master.
my $other = raw_connect($d);
print {$other} fcgi_request_bytes(1, 'sleep.pl', query => '1', keep_conn => 1);
($recs) = read_records($other, timeout => 5);
ok collect_response($recs, 1)->{ended}, 'another connection is answered';
sleep 0.5;

print {$kept} fcgi_request_bytes(2, 'pid.pl', keep_conn => 1);
my $why;
($recs, $why) = read_records($kept, timeout => 5);
ok collect_response($recs, 2)->{ended}, 'the kept connection serves its next request'
    or diag "read ended: $why";
$d->stop;
done_testing;
