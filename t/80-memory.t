# 20k requests of a CGI.pm hello world in one worker over a kept connection:
# the worker's RSS must not grow (the request namespace is really freed).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use FcgiSpawn::Test;

my $TOTAL  = $ENV{FCGI_SPAWN_MEMORY_REQUESTS} || 20_000;
my $WARMUP = int($TOTAL / 10);
my $LIMIT_KB = 2048;

my $d = start_daemon(workers => 1, preload => ['CGI']);
my ($worker) = worker_pids($d);
ok $worker, "worker $worker";

my $s = raw_connect($d);
my $t0 = time;
my ($failures, %rss) = (0);
for my $n (1 .. $TOTAL) {
    my $id = 1 + $n % 60000;
    print {$s} fcgi_request_bytes($id, 'hello.pl', keep_conn => 1, query => "name=n$n&junk=" . ('x' x ($n % 100)));
    my ($recs, $why) = read_records($s, timeout => 10);
    my $r = collect_response($recs, $id);
    if (!$r->{ended} || $r->{stdout} !~ /Hello, n$n!/) {
        $failures++;
        diag "request $n failed ($why): " . substr($r->{stdout}, 0, 200);
        last if $why ne 'done';
    }
    $rss{$n} = rss_kb($worker) if $n == $WARMUP || $n == $TOTAL;
}
my $secs = time - $t0;
is $failures, 0, "$TOTAL requests answered";
is_deeply [ worker_pids($d) ], [$worker], 'one worker served them all';
diag sprintf '%d requests in %.1fs (%.0f req/s); VmRSS after %d: %s kB, after %d: %s kB',
    $TOTAL, $secs, $TOTAL / ($secs || 1), $WARMUP, $rss{$WARMUP} // '?', $TOTAL, $rss{$TOTAL} // '?';
ok defined $rss{$WARMUP} && defined $rss{$TOTAL}, 'RSS measured';
cmp_ok(($rss{$TOTAL} // 1e9) - ($rss{$WARMUP} // 0), '<', $LIMIT_KB, "RSS growth over the last " . ($TOTAL - $WARMUP) . " requests below $LIMIT_KB kB");
$d->stop;
done_testing;
