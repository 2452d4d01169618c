# Stops reach workers out of band, never as a signal a running script sees.
# TERM to the master: a script in sleep() sleeps its full time, a script
# with its own $SIG{TERM} handler never sees it, and both responses are
# delivered whole; no new connection is taken meanwhile (refused), and the daemon exits
# as soon as they are done (the script's handler cannot keep its worker
# alive until the grace time). TTOU (one worker fewer) likewise lets the
# request in hand finish.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $started = sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /start/ };

{
    my $d = start_daemon(workers => 2, args => [ '--grace-time', 20 ]);
    my @workers = worker_pids($d);
    my %req = ('sleep-timed.pl' => '3', 'sig-term.pl' => '');
    my %sock;
    for my $script (sort keys %req) {
        $sock{$script} = raw_connect($d);
        print { $sock{$script} } fcgi_request_bytes(1, $script, query => $req{$script});
        my (undef, $why) = read_records($sock{$script}, until => $started, timeout => 10);
        is $why, 'done', "$script started";
    }
    my $t0 = time;
    kill 'TERM', $d->pid;
    sleep 0.3;
    # No new request is taken: the socket is gone, a web server's connect
    # fails at once (it can try another pool) instead of waiting in a
    # queue that the exit would reset.
    ok !-e $d->socket, 'the socket file is removed when the stop begins';
    ok !eval { raw_connect($d) }, 'a connection after TERM is refused';

    my %out;
    for my $script (sort keys %req) {
        my ($recs, $why) = read_records($sock{$script}, timeout => 15);
        my $r = collect_response($recs, 1);
        ok $r->{ended}, "$script: END_REQUEST after TERM";
        $out{$script} = $r->{stdout};
        like $r->{stdout}, qr/^done \d+$/m, "$script: whole page";
    }
    my ($slept) = $out{'sleep-timed.pl'} =~ /^slept ([\d.]+)$/m;
    cmp_ok $slept, '>=', 2.95, 'sleep() in the running script was not cut short';
    unlike $out{'sig-term.pl'}, qr/got TERM/, "the script's TERM handler never ran";
    my $st = $d->wait_exit(15);
    is $st, 0, 'daemon exits 0';
    cmp_ok time - $t0, '<', 8, 'as soon as the requests are done, not after the grace time';
    ok !(grep { kill 0, $_ } @workers), 'no worker left';
    unlike $d->log_text, qr/killing them/, 'no worker had to be killed';
}

{
    # TTOU: the worker that leaves finishes its request first.
    my $d = start_daemon(workers => 2);
    my @socks = map { raw_connect($d) } 1 .. 2;
    for my $s (@socks) {
        print {$s} fcgi_request_bytes(1, 'sleep-timed.pl', query => '2');
        read_records($s, until => $started, timeout => 10);
    }
    kill 'TTOU', $d->pid;
    for my $s (@socks) {
        my ($recs) = read_records($s, timeout => 10);
        my $r = collect_response($recs, 1);
        like $r->{stdout}, qr/^slept (?:[2-9])\.\d+$/m, 'TTOU: the running request slept its full time';
    }
    ok wait_for(sub { worker_pids($d) == 1 }, 5), 'TTOU: one worker left';
    my ($out) = fcgi_request($d, 'pid.pl', timeout => 10);
    like $out, qr/^\d+$/m, 'TTOU: the pool still answers';
    $d->stop;
}
done_testing;
