# Stalled clients cannot starve the pool: a request reaches a worker only
# once its BEGIN_REQUEST and params are there, and a connection idle or
# partial past --idle-timeout is closed. 1,000 connections that send half a
# record, half the params, or all but the end of a small body (and 100 that
# send nothing) sit beside normal traffic through nginx, whose fast p99
# stays within 2x its unloaded value; then all are closed, with one log line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $idle_timeout = 6;
my $d = start_daemon(workers => 2, preload => ['CGI'], args => [ '--idle-timeout', $idle_timeout ]);
my $ngx = start_nginx($d);
my $fast = $ngx->url('/hello.pl');

sub median { my @v = sort { $a <=> $b } @_; return $v[ @v / 2 ] }
sub fast_p99s { map { wrk($fast, conns => 4, secs => 1)->{p99} } 1 .. 3 }

wrk($fast, conns => 4, secs => 1);
my @alone = fast_p99s();

my $whole = fcgi_request_bytes(1, 'marker.pl', query => 'm=stalled', stdin => 'x' x 100);
my ($params_end) = do {
    # Offset just past BEGIN_REQUEST and the first PARAMS record.
    my $len = unpack 'x4n', substr($whole, 16, 8);
    my $pad = unpack 'x6C', substr($whole, 16, 8);
    16 + 8 + $len + $pad;
};
my @cuts = (
    [ 'half a record header', 4 ],
    [ 'half of BEGIN_REQUEST', 12 ],
    [ 'params not ended', $params_end ],
    [ 'body not ended', length($whole) - 8 ],
    [ 'nothing at all', 0 ],
);
my $t_open = time;
my @stalled;
for my $i (0 .. 1099) {
    my $cut = $i < 1000 ? $cuts[ $i % 4 ][1] : 0;
    my $s = raw_connect($d);
    print {$s} substr($whole, 0, $cut) if $cut;
    push @stalled, $s;
}
sleep 0.5;
my $beside = median(fast_p99s());
my $res = http_get($ngx, '/hello.pl?name=stalled');
is $res->{status}, 200, 'a request through nginx is answered';
my ($out) = fcgi_request($d, 'pid.pl', timeout => 5);
like $out, qr/^\d+$/m, 'a request on a new connection is answered';

# Every stalled connection is closed once idle_timeout has passed, none
# much later, and none of their requests ran.
my $sel = IO::Select->new(@stalled);
my %closed;
while ($sel->count && time - $t_open < $idle_timeout + 10) {
    for my $s ($sel->can_read(1)) {
        my $n = sysread $s, my $buf, 4096;
        next if $n;
        $closed{ 0 + $s } = time - $t_open;
        $sel->remove($s);
    }
}
is scalar(keys %closed), scalar(@stalled), 'every stalled connection was closed';
my @times = sort { $a <=> $b } values %closed;
cmp_ok $times[0], '>=', $idle_timeout - 0.5, 'not before idle_timeout';
cmp_ok $times[-1], '<', $idle_timeout + 4, 'nor long after it';
unlike $d->log_text, qr/marker-ran-stalled/, 'no stalled request ran';
my @lines = grep { /did not arrive within $idle_timeout s/ } $d->log_lines;
ok @lines >= 1 && @lines <= 4, 'a few log lines for a thousand stalled connections, not one each'
    or diag scalar(@lines), " lines";
my ($n) = join(' ', @lines) =~ /closed (\d+) connection/;
ok $n, 'the log counts them';
$res = http_get($ngx, '/hello.pl?name=after');
like $res->{content}, qr/Hello, after!/, 'the pool serves on afterwards';

# Unloaded p99: runs before and after, the median of six (the box is shared).
push @alone, fast_p99s();
my $alone = median(@alone);
diag sprintf 'fast p99 alone %.2f ms (%s), beside 1,100 stalled connections %.2f ms',
    $alone, join(' ', map { sprintf '%.1f', $_ } @alone), $beside;
cmp_ok $beside, '<=', 2 * $alone, 'fast p99 beside 1,100 stalled connections within 2x its unloaded value';
$ngx->stop;
$d->stop;
done_testing;
