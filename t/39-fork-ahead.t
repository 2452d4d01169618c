# fork isolation forks the next request's child while the worker is idle
# (a "spare child"), so a request does not wait for the fork. The child
# is still a new process to its script: $^T and rand are the request's;
# it gets the request whole (a param larger than any socket buffer), and
# its exit status as a CGI process's. A spare never outlives what it was
# forked from: the script changed on disk (compiled again), Perl running
# in the worker (a registry script's `wait` must not wait for it), the
# worker's exit; one killed by hand is replaced on the spot; and it holds
# none of the worker's kept connections open.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use FcgiSpawn::Test;

# The worker's spare child, once there is one (undef after 5 s).
sub spare_of {
    my ($worker) = @_;
    my $spare;
    wait_for(sub {
        my @children = worker_pids($worker);
        ($spare) = @children == 1 && process_title($children[0]) eq 'fcgi-spawn: spare child' ? @children : ();
        $spare;
    }, 5);
    return $spare;
}

sub body_of { parse_cgi(scalar fcgi_request(@_))->{body} }

my $tmp = tempdir(CLEANUP => 1);
my $d = start_daemon(workers => 1, isolation => 'fork', root => [ scripts_dir(), $tmp ]);
my ($worker) = worker_pids($d);

subtest 'the request runs in the child forked ahead' => sub {
    like body_of($d, 'pid.pl'), qr/^\d+$/m, 'a first request';
    my $spare = spare_of($worker);
    ok $spare, "then the worker has a spare child ($spare)";
    is body_of($d, 'pid.pl'), "$spare\n", 'the next request runs in it';
    my $next = spare_of($worker);
    ok $next && $next != $spare, "and a new spare waits ($next)";
    ok !running($spare), 'the used one is gone';
};

subtest 'the spare writes ahead the pages the last child wrote' => sub {
    # A hello child copies some 300 heap pages it shares with the worker;
    # the spare after it copies them while it waits (a spare that did not
    # holds some 100 kB of its own).
    body_of($d, 'hello.pl') for 1 .. 3;
    my $spare = spare_of($worker);
    my $dirty;
    wait_for(sub { ($dirty) = slurp("/proc/$spare/smaps_rollup") =~ /^Private_Dirty:\s+(\d+) kB/m; ($dirty // 0) > 600 }, 5);
    cmp_ok $dirty // 0, '>', 600, "the spare holds ${\ ($dirty // '?')} kB of its own";
    like body_of($d, 'hello.pl'), qr/Hello, world/, 'and serves the next request';
};

subtest 'a new process to its script, though forked earlier' => sub {
    ok spare_of($worker), 'a spare waits';
    sleep 3.5;
    like body_of($d, 'check/basetime.pl'), qr/\$\^T: the script start/, q{$^T is the request's start, not the fork's};
    my %seen;
    $seen{ body_of($d, 'rand.pl') =~ /rand=(\d+)/ ? $1 : 'none' } = 1 for 1 .. 4;
    is scalar(keys %seen), 4, 'four requests, four rand numbers';
};

subtest 'a param larger than the socket buffers arrives whole' => sub {
    my $big = ('x' x 299_992) . 'ABCDEFGH';
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'check/param-size.pl', params => { HTTP_X_BIG => $big });
    my ($recs) = read_records($s, timeout => 10);
    like collect_response($recs, 1)->{stdout}, qr/length=300000 tail=ABCDEFGH/, '300,000 bytes';
};

subtest 'the exit status is the script process\'s' => sub {
    my $mark = length $d->log_text;
    fcgi_request($d, 'check/status.pl', query => 'code=3');
    fcgi_request($d, 'check/status.pl', query => 'code=4&how=_exit');
    my $log = substr $d->log_text, $mark;
    like $log, qr/status\.pl produced no output \(exit status 3\)/, 'exit 3 (reported by the child)';
    like $log, qr/status\.pl produced no output \(exit status 4\)/, 'POSIX::_exit(4) (from its exit)';
};

subtest 'a script changed on disk: the spare goes, the new code runs' => sub {
    spew("$tmp/version.pl", qq{print "Content-Type: text/plain\\n\\nv1\\n";\n});
    chmod 0755, "$tmp/version.pl";
    is body_of($d, "$tmp/version.pl"), "v1\n", 'first version';
    my $spare = spare_of($worker);
    ok $spare, 'a spare waits';
    spew("$tmp/version.pl", qq{print "Content-Type: text/plain\\n\\nversion 2\\n";\n});
    is body_of($d, "$tmp/version.pl"), "version 2\n", 'the changed file runs';
    ok wait_for(sub { !running($spare) }, 3), 'the spare forked before the compile is gone';
    ok spare_of($worker), 'a new one waits';
};

subtest 'a child forked with the request, after a slow compile' => sub {
    # The worker holds two more kept connections while it compiles; past
    # 2 ms they go to the master and their descriptor numbers are free
    # again when the child is forked (its socket pair takes them): the
    # child must close its request's connection only, nothing by a number
    # from the request's start.
    spew("$tmp/slow-compile.pl", qq{BEGIN { select undef, undef, undef, 0.1 }\nprint "Content-Type: text/plain\\n\\ncompiled slowly\\n";\n});
    my @kept = map { raw_connect($d) } 1 .. 3;
    for my $s (@kept) {
        print {$s} fcgi_request_bytes(1, 'hello.pl', keep_conn => 1, query => 'name=kept');
        my ($recs) = read_records($s, timeout => 10);
        like collect_response($recs, 1)->{stdout}, qr/Hello, kept/, 'a request on a connection then kept';
    }
    print {$kept[0]} fcgi_request_bytes(2, "$tmp/slow-compile.pl", keep_conn => 1);
    my ($recs) = read_records($kept[0], timeout => 10);
    like collect_response($recs, 2)->{stdout}, qr/compiled slowly/, 'served';
    for my $s (@kept[1, 2]) {
        print {$s} fcgi_request_bytes(2, 'hello.pl', keep_conn => 1, query => 'name=other');
        ($recs) = read_records($s, timeout => 10);
        like collect_response($recs, 2)->{stdout}, qr/Hello, other/, 'another kept connection still serves';
    }
};

subtest 'a spare killed by hand is replaced for the request' => sub {
    my $spare = spare_of($worker);
    kill 'KILL', $spare;
    sleep 0.2;
    my $mark = length $d->log_text;
    my $pid = body_of($d, 'pid.pl');
    like $pid, qr/^\d+$/, 'the request is served';
    isnt $pid, "$spare\n", 'by another child';
    like substr($d->log_text, $mark), qr/the spare child did not take the request/, 'logged';
};

subtest 'the spare holds no kept connection open' => sub {
    # The worker closes a kept connection idle past --idle-timeout while
    # the spare waits: a copy in the spare would keep it open, and the web
    # server would send its next request into it.
    my $d = start_daemon(workers => 1, isolation => 'fork', args => [ '--idle-timeout', 1 ]);
    my ($worker) = worker_pids($d);
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'hello.pl', keep_conn => 1, query => 'name=kept');
    my ($recs) = read_records($s, timeout => 10);
    like collect_response($recs, 1)->{stdout}, qr/Hello, kept/, 'a request on a kept connection';
    ok spare_of($worker), 'a spare forked while the connection is held';
    my (undef, $why) = read_records($s, until => sub { 0 }, timeout => 5);
    is $why, 'eof', 'the connection closes once idle past --idle-timeout';
    $d->stop;
};

subtest 'the worker leaves: its spare goes too' => sub {
    my $spare = spare_of($worker);
    ok $spare, 'a spare waits';
    $d->stop;
    ok wait_for(sub { !-e "/proc/$spare" }, 3), 'gone with the worker, reaped by it (not left to init)';
};

subtest 'Perl running in the worker ends the spare first' => sub {
    my $d = start_daemon(workers => 1, isolation => 'registry',
        args => [ '--isolation-for', scripts_dir() . '/pid.pl=fork' ]);
    my ($worker) = worker_pids($d);
    body_of($d, 'pid.pl');
    my $spare = spare_of($worker);
    ok $spare, 'after a fork-mode script, a spare waits';
    is body_of($d, 'check/wait.pl', timeout => 10), "wait=-1\n", q{a registry script's wait() has no child to wait for};
    ok !running($spare), 'the spare is gone';
    is scalar(worker_pids($worker)), 0, 'and no other is forked after a registry request';
    like body_of($d, 'pid.pl'), qr/^\d+$/, 'the fork-mode script is served again';
    $d->stop;
};

done_testing;
