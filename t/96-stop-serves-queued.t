# A graceful stop (TERM) serves what had already arrived: connections the
# kernel queued on the socket while every worker was busy, and a POST among
# them, are answered in full, not reset; a connection that sends nothing,
# or half a request, is closed within a second (a stalled client does not
# hold the stop up for idle_timeout); new connections are refused at once (the UNIX
# socket file is gone); the daemon exits 0. Before, the queued ones were
# reset at the stop, and a web server does not retry a POST elsewhere.
#
# Kept connections (FCGI_KEEP_CONN) idle at the stop, held by a worker or
# by the master, are told goodbye: an empty FCGI_STDERR record with the id
# of their last request, on which a web server closes a connection it
# keeps idle. A request that was on its way anyway (sent before the
# goodbye arrived) is served, and the goodbye said again after it; the
# daemon exits once the web server has closed them.
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

subtest 'kept connections at TERM: goodbye, and what was on its way is served' => sub {
    my $d = start_daemon(workers => 2);
    # Four kept connections, one request answered on each; two workers
    # hold some, the master the others.
    my @kept = map { raw_connect($d) } 1 .. 4;
    for my $i (0 .. $#kept) {
        my $id = $i + 1;
        print {$kept[$i]} fcgi_request_bytes($id, 'hello.pl', keep_conn => 1);
        my ($recs) = read_records($kept[$i], timeout => 10);
        ok collect_response($recs, $id)->{ended}, "kept connection $id: first request answered";
    }
    my $stopped_at = time;
    kill 'TERM', $d->pid;
    for my $i (0 .. $#kept) {
        my $id = $i + 1;
        my ($recs, $why) = read_records($kept[$i], timeout => 5, until => sub { 1 });
        is_deeply [ map { [ @$_{qw(type id content)} ] } @$recs ], [ [ FCGI_STDERR, $id, '' ] ],
            "kept connection $id: goodbye (an empty stderr record, id $id) at once ($why)";
    }
    cmp_ok time - $stopped_at, '<', 1, 'every goodbye within a second';
    # A web server that had sent a POST before the goodbye arrived: served
    # in full, then told goodbye again.
    print {$kept[0]} fcgi_request_bytes(1, 'post.pl', stdin => 'a=1&b=two', keep_conn => 1);
    my ($recs) = read_records($kept[0], timeout => 10);
    my $resp = collect_response($recs, 1);
    ok $resp->{ended}, 'a POST sent after the goodbye is answered';
    like parse_cgi($resp->{stdout})->{body}, qr/^length=9$/m, '... in full';
    ($recs) = read_records($kept[0], timeout => 5, until => sub { 1 });
    is_deeply [ map { [ @$_{qw(type id)} ] } @$recs ], [ [ FCGI_STDERR, 1 ] ], '... and goodbye again';
    ok $d->alive, 'the daemon waits while the web server keeps them';
    # The web server closes them, as nginx does on the goodbye.
    close $_ for @kept;
    is $d->wait_exit(5), 0, 'then it exits 0';
    cmp_ok time - $stopped_at, '<', 3, 'at once (not after a timeout)';
};

done_testing;
