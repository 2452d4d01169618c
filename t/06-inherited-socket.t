# An inherited listening socket works as promised: spawn-fcgi passes it on
# fd 0 (FCGI_LISTENSOCK_FILENO, as mod_fcgid does), systemd as LISTEN_FDS
# (systemd-socket-activate, the real programs). Requests are answered by
# every worker, with a body on fd 0 and none after it, and TERM stops the
# daemon cleanly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

for my $how (qw(spawn-fcgi spawn-fcgi-tcp systemd)) {
    my $d = start_daemon(inherit => $how, workers => 2);
    is scalar(worker_pids($d)), 2, "$how: two workers";
    my %pids;
    for my $n (1 .. 20) {
        my ($out, $err, $rc) = fcgi_request($d, 'pid.pl', timeout => 10);
        is $rc, 0, "$how: request $n answered" or diag $err, $d->log_text;
        $pids{$1}++ if $out =~ /^(\d+)$/m;
        last if keys %pids == 2;
    }
    # Two requests at once: both workers must be able to take one.
    my @socks = map { raw_connect($d) } 1 .. 2;
    print {$_} fcgi_request_bytes(1, 'sleep.pl', query => '0.5') for @socks;
    for my $s (@socks) {
        my ($recs, $why) = read_records($s, timeout => 10);
        my ($pid) = collect_response($recs, 1)->{stdout} =~ /done (\d+)/;
        $pids{$pid}++ if $pid;
    }
    is scalar(keys %pids), 2, "$how: both workers serve on the inherited socket";
    my ($out) = fcgi_request($d, 'post.pl', data => 'a=1&b=two', timeout => 10);
    like $out, qr/^length=9$/m, "$how: a request body reaches the script on fd 0";
    ($out) = fcgi_request($d, 'stdin-kind.pl', timeout => 10);
    like $out, qr/^socket=0$/m, "$how: without a body, fd 0 is no socket"
        or diag $out;
    unlike $d->log_text, qr/accept failed|Socket operation on non-socket/,
        "$how: no accept errors in the log";
    my $origin = $how eq 'systemd' ? qr/socket systemd passed \(LISTEN_FDS/ : qr/socket passed on fd 0/;
    like $d->log_text, $origin, "$how: the log says where the socket came from";
    $d->stop;
}
done_testing;
