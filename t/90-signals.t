# TERM and INT are graceful: the request in flight completes, then the
# daemon exits 0 and leaves no worker behind.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use FcgiSpawn::Test;

for my $sig (qw(TERM INT)) {
    my $d = start_daemon(workers => 2);
    my @workers = worker_pids($d);
    is scalar(@workers), 2, "$sig: two workers";
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '2');
    my ($recs, $why) = read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /start/ }, timeout => 10);
    is $why, 'done', "$sig: slow request started";
    my $t0 = time;
    kill $sig, $d->pid;
    ($recs, $why) = read_records($s, timeout => 15);
    my $r = collect_response([ @$recs ], 1);
    is $why, 'done', "$sig: in-flight request got its END_REQUEST";
    like $r->{stdout}, qr/^done \d+$/m, "$sig: in-flight request completed its page";
    is $r->{app_status}, 0, "$sig: app status 0";
    my $st = $d->wait_exit(15);
    is $st, 0, "$sig: daemon exited 0";
    cmp_ok time - $t0, '<', 10, "$sig: and did not hang";
    ok !(grep { kill 0, $_ } @workers), "$sig: no worker left behind";
}

# A daemon with nothing to do stops at once.
my $d = start_daemon(workers => 2);
my $t0 = time;
is $d->terminate('TERM', 10), 0, 'idle daemon exits 0 on TERM';
cmp_ok time - $t0, '<', 3, 'idle daemon stops quickly';
$d->{stopped} = 1;
done_testing;
