# --max-requests N: a worker serves exactly N requests, then is replaced; the
# last response on a kept connection is delivered whole.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1, max_requests => 3);
my @pids = map { (fcgi_request($d, 'pid.pl'))[0] =~ /(\d+)/ ? $1 : 'none' } 1 .. 9;
is scalar(grep { $_ eq 'none' } @pids), 0, 'all 9 requests answered' or diag "@pids";
is $pids[0], $pids[$_], "request $_ by the first worker" for 1, 2;
is $pids[3], $pids[$_], "request $_ by the second worker" for 4, 5;
is $pids[6], $pids[$_], "request $_ by the third worker" for 7, 8;
isnt $pids[0], $pids[3], 'worker recycled after 3 requests';
isnt $pids[3], $pids[6], 'and again after 3 more';

# Kept connection: three requests answered in full by one worker (the
# first says which); the connection outlives its worker's recycling (it
# goes back to the master) and the next worker answers the fourth.
my $s = raw_connect($d);
print {$s} fcgi_request_bytes(1, 'pid.pl', keep_conn => 1);
my ($recs, $why) = read_records($s, timeout => 10);
my ($first) = collect_response($recs, 1)->{stdout} =~ /(\d+)/;
for my $id (2 .. 3) {
    print {$s} fcgi_request_bytes($id, 'large.pl', keep_conn => 1);
    ($recs, $why) = read_records($s, timeout => 20);
    my $res = collect_response($recs, $id);
    ok $res->{ended}, "kept connection, request $id ended";
    is length($res->{stdout}) > 5 * 1024 * 1024, 1, "request $id: whole 5 MiB response";
}
print {$s} fcgi_request_bytes(4, 'pid.pl', keep_conn => 1);
($recs, $why) = read_records($s, timeout => 10);
my ($fourth) = collect_response($recs, 4)->{stdout} =~ /(\d+)/;
ok $first && $fourth, 'the kept connection survives its worker being recycled';
isnt $fourth, $first, 'a new worker answers on it after the third request';

# Through nginx with an upstream keepalive pool: recycling is invisible.
my $ngx = start_nginx($d);
my @status = map { http_get($ngx, '/hello.pl')->{status} } 1 .. 10;
is_deeply \@status, [ (200) x 10 ], 'nginx: 10 requests across recycles all 200';
$ngx->stop;
$d->stop;
done_testing;
