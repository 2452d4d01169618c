# A graceful stop (TERM) serves what had already arrived: connections the
# kernel queued on the socket while every worker was busy, and a POST among
# them, are answered in full, not reset; a connection that sends nothing,
# or half a request, is closed within a second (a stalled client does not
# hold the stop up for idle_timeout); new connections are refused at once (the UNIX
# socket file is gone); the daemon exits 0. Before, the queued ones were
# reset at the stop, and a web server does not retry a POST elsewhere.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

for my $listen (qw(unix tcp)) {
    subtest "queued on a $listen socket at TERM" => sub {
        my $d = start_daemon(workers => 1, $listen eq 'tcp' ? (tcp => 1) : ());
        # The one worker is busy for 2 s...
        my $slow = raw_connect($d);
        print {$slow} fcgi_request_bytes(1, 'sleep.pl', query => '2');
        my ($recs) = read_records($slow, timeout => 10,
            until => sub { collect_response($_[1], 1)->{stdout} =~ /start \d+/ });
        like collect_response($recs, 1)->{stdout}, qr/start \d+/, 'a slow request runs';
        my @slow_records = @$recs;
        # ...so these wait in the listen backlog: two GETs and a POST.
        my @queued = map { raw_connect($d) } 1 .. 3;
        print {$queued[0]} fcgi_request_bytes(1, 'hello.pl');
        print {$queued[1]} fcgi_request_bytes(1, 'hello.pl');
        print {$queued[2]} fcgi_request_bytes(1, 'post.pl', stdin => 'a=1&b=two');
        my $silent = raw_connect($d);    # connects, says nothing
        my $stalled = raw_connect($d);   # half a request, then nothing
        print {$stalled} substr(fcgi_request_bytes(1, 'hello.pl'), 0, 40);
        sleep 0.3;
        my $stopped_at = time;
        kill 'TERM', $d->pid;
        ok wait_for(sub { $d->log_text =~ /serving 5 connection\(s\) that were queued/ }, 5),
            'the master takes the queued connections'
            or diag $d->log_text;
        if ($listen eq 'unix') {
            ok !-e $d->socket, 'the socket file is gone at once: new connections are refused';
        }
        ($recs) = read_records($slow, timeout => 10);
        like collect_response([ @slow_records, @$recs ], 1)->{stdout}, qr/start \d+\ndone \d+/,
            'the slow request finishes';
        for my $i (0 .. 2) {
            my ($r, $why) = read_records($queued[$i], timeout => 10);
            my $resp = collect_response($r, 1);
            ok $resp->{ended}, "queued request $i is answered ($why)";
            my $cgi = parse_cgi($resp->{stdout});
            is $cgi->{status}, 200, '... with 200';
            like $cgi->{body}, $i == 2 ? qr/^length=9$/m : qr{Hello, world!</p>}, '... and its whole page';
        }
        my ($r, $why) = read_records($silent, timeout => 5);
        is $why, 'eof', 'the silent connection is closed';
        ($r, $why) = read_records($stalled, timeout => 5);
        is $why, 'eof', 'so is the stalled one';
        cmp_ok time - $stopped_at, '<', 6, 'all within the slow request plus a second or so';
        is $d->wait_exit(15), 0, 'the daemon exits 0';
    };
}

done_testing;
