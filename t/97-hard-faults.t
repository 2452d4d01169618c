# Hard faults (issue 17, item 7), each on a real daemon and real sockets:
# a worker killed with -9 mid-request (its client sees the connection
# close, the pool forks a replacement, nobody spins, the status page counts
# it); the master killed with -9 in the middle of a reload (no process of
# either generation outlives it, the socket is left refusing, a supervisor's
# restart on the same path serves); a full disk under the body's temp file
# (500, one log line, nothing left, the worker serves on); the ready queue
# full beside a request too large for it; a slow reader of 200 MB during a
# graceful stop (delivered whole, bounded by --grace-time).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use JSON::PP qw(decode_json);
use POSIX qw(ECONNREFUSED);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $started = sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /start/ };
my @status = ('--status-path', '/fcgi-status');

# CPU time (user + system) a process used, in clock ticks.
sub cpu_ticks {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat") or return undef;
    $stat =~ s/^.*\)\s+//s;
    my @f = split ' ', $stat;
    return $f[11] + $f[12];
}

sub status_json {
    my ($d) = @_;
    my $out = `${\ bin_path()} status --connect ${\ $d->socket} --status-path /fcgi-status --json`;
    return eval { decode_json($out) } || {};
}

# Lines of the log written since it was $len bytes long.
sub log_since {
    my ($d, $len) = @_;
    return substr $d->log_text, $len;
}

# 1. A worker killed with -9 in the middle of a request.
{
    my $d = start_daemon(workers => 2, args => [@status]);
    my @before = worker_pids($d);
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'sleep-timed.pl', query => '30');
    my ($recs, $why) = read_records($s, until => $started, timeout => 10);
    my ($victim) = collect_response($recs, 1)->{stdout} =~ /start (\d+)/;
    ok $victim && grep({ $_ == $victim } @before), "kill -9: request running in worker $victim";
    my $mark = length $d->log_text;
    my $t0 = time;
    kill 'KILL', $victim;
    ($recs, $why) = read_records($s, timeout => 10);
    my $took = time - $t0;
    is $why, 'eof', 'kill -9: the client sees its connection close';
    ok !collect_response($recs, 1)->{ended}, 'kill -9: with no FCGI_END_REQUEST (nginx answers 502, t/50)';
    cmp_ok $took, '<', 1, sprintf 'kill -9: at once (%.2f s)', $took;
    my @after;
    ok wait_for(sub { @after = worker_pids($d); @after == 2 && !grep { $_ == $victim } @after }, 5),
        "kill -9: the pool is back to two workers (@after)";
    ok wait_for(sub { log_since($d, $mark) =~ /worker $victim killed by SIGKILL; replacing it/ }, 3),
        'kill -9: one log line names the worker and the signal';
    is scalar(() = log_since($d, $mark) =~ /\b$victim\b/g), 1, 'kill -9: once';

    # Nobody spins: master and workers idle for a second after.
    my %ticks = map { $_ => cpu_ticks($_) } $d->pid, @after;
    sleep 1;
    for my $pid ($d->pid, @after) {
        my $used = cpu_ticks($pid) - $ticks{$pid};
        cmp_ok $used, '<=', 5, sprintf 'kill -9: %s %d used %d ticks of CPU in the second after',
            $pid == $d->pid ? 'master' : 'worker', $pid, $used;
    }
    my $st = status_json($d);
    is $st->{crashed_workers}, 1, 'kill -9: status counts one crashed worker';
    is $st->{active_workers}, 1, 'kill -9: the dead request is no longer active (only this status request)';
    is $st->{total_workers}, 2, 'kill -9: status shows two workers';
    my $r = parse_cgi(scalar fcgi_request($d, 'hello.pl'));
    is $r->{status}, 200, 'kill -9: the next request is served';
    $d->stop;
}

# 2. The master killed with -9 while a reload builds its new generation
# (a preload script that takes a second, re-run for the new interpreter),
# with an old worker in a request: every process of both generations is
# gone within 2 s, the socket file is left behind refusing connections,
# and a supervisor's restart on the same path replaces it and serves.
{
    my $dir = tempdir('fcgi-spawn-faults-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $slow = "$dir/slow";
    my $preload = spew("$dir/preload.pl", "select undef, undef, undef, 1.5 if -e '$slow';\n1;\n");
    my $init = spew("$dir/init.pl", "select undef, undef, undef, 3 if -e '$slow';\n1;\n");
    my $sock = "$dir/fcgi.sock";
    for my $when ('building', 'starting') {
        unlink $slow;
        my $d = start_daemon(workers => 2, listen => $sock, preload_script => [$preload],
            args => ['--worker-init', $init]);
        my @old = worker_pids($d);
        my $s = raw_connect($d);
        print {$s} fcgi_request_bytes(1, 'sleep-timed.pl', query => '30');
        my (undef, $why) = read_records($s, until => $started, timeout => 10);
        is $why, 'done', "master -9 while $when: an old worker is in a request";
        spew($slow, '');
        my $mark = length $d->log_text;
        kill 'HUP', $d->pid;
        my @new;
        if ($when eq 'building') {
            # The preload script sleeps in the master: no new worker yet.
            ok wait_for(sub { log_since($d, $mark) =~ /SIGHUP: reloading/ }, 5), 'the reload began';
            sleep 0.5;
            is_deeply [ worker_pids($d) ], \@old, 'the master is still in the preload script: no new worker yet';
        }
        else {
            # The new workers are forked and sleep in their worker_init.
            ok wait_for(sub { @new = grep { my $p = $_; !grep { $_ == $p } @old } worker_pids($d); @new >= 2 }, 8),
                "the new generation is starting (@new)";
        }
        my %seen;
        my @all = grep { !$seen{$_}++ } @old, @new, worker_pids($d);
        my $t0 = time;
        kill 'KILL', $d->pid;
        my $gone = wait_for(sub { !grep { running($_) } @all }, 5);
        my $took = time - $t0;
        $d->wait_exit(5);
        ok $gone, "master -9 while $when: no worker of either generation outlives it (@all)";
        cmp_ok $took, '<', 2, sprintf "master -9 while $when: all gone within 2 s (%.2f s)", $took;
        (undef, $why) = read_records($s, timeout => 5);
        is $why, 'eof', "master -9 while $when: the client of the running request sees its connection close";
        ok -S $sock, "master -9 while $when: the socket file is left behind (no process could remove it)";
        my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
        ok !$c && $! == ECONNREFUSED, "master -9 while $when: connecting to it is refused at once, not left hanging ($!)";
        unlink $slow;
        my $again = start_daemon(workers => 2, listen => $sock, preload_script => [$preload],
            args => ['--worker-init', $init]);
        my $r = parse_cgi(scalar fcgi_request($again, 'hello.pl'));
        is $r->{status}, 200, "master -9 while $when: a restart on the same socket path serves";
        like $again->log_text, qr/stale|replac/i, '... having replaced the stale socket file'
            or diag $again->log_text;
        $again->stop;
        ok !-e $sock, '... and its graceful stop removes it';
    }
}

# 3. The disk under the request body's temp file is full: a 1 MiB tmpfs as
# TMPDIR (where bodies past --body-spill go) and a 2 MiB POST. The client
# gets a 500 and its kept connection stays usable, one log line says what
# happened and where, nothing is left in the directory (not even space held
# by an unlinked file), and the worker serves on, a body that fits included.
SKIP: {
    my $dir = tempdir('fcgi-spawn-faults-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $spill = "$dir/spill";
    mkdir $spill or die "mkdir $spill: $!";
    my $mounted = system('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', $spill) == 0;
    skip "cannot mount a 1 MiB tmpfs on $spill (needs root and mount(8)): exit $?", 12 unless $mounted;
    my $used = sub { my ($line) = grep { m{\Q$spill\E$} } `df -k $spill`; (split ' ', $line // '')[2] };
    my $d = start_daemon(workers => 1, env => { TMPDIR => $spill }, args => ['--body-spill', 65536]);
    my ($pid) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
    my $body = join '', map { chr(($_ * 31) % 256) } 1 .. 2 * 1024 * 1024;
    my $s = raw_connect($d);
    my $mark = length $d->log_text;
    print {$s} fcgi_request_bytes(1, 'post.pl', query => 'mode=read', stdin => $body, keep_conn => 1);
    my ($recs, $why) = read_records($s, timeout => 15);
    my $res = collect_response($recs, 1);
    is $why, 'done', 'full disk: the request is answered (FCGI_END_REQUEST)';
    my $r = parse_cgi($res->{stdout});
    is $r->{status}, 500, 'full disk: with a 500';
    unlike $res->{stdout}, qr/^length=/m, 'full disk: the script did not run on a partial body';
    my @lines = grep { length } split /\n/, log_since($d, $mark);
    is scalar(@lines), 1, 'full disk: one log line' or diag join "\n", @lines;
    like $lines[0] // '', qr/500: .*post\.pl.*\Q$spill\E.*No space left on device/,
        'full disk: it names the script, the directory and the error';
    opendir my $dh, $spill or die "opendir $spill: $!";
    is_deeply [ grep { !/^\.\.?$/ } readdir $dh ], [], 'full disk: no file left in the directory';
    is $used->(), 0, 'full disk: no space held by an unlinked file either';
    print {$s} fcgi_request_bytes(2, 'pid.pl', keep_conn => 1);
    ($recs, $why) = read_records($s, timeout => 10);
    like collect_response($recs, 2)->{stdout}, qr/\b$pid\b/, 'full disk: the kept connection serves its next request, same worker';
    my $fits = substr $body, 0, 300_000;
    print {$s} fcgi_request_bytes(3, 'post.pl', query => 'mode=read', stdin => $fits, keep_conn => 1);
    ($recs, $why) = read_records($s, timeout => 10);
    my $out = collect_response($recs, 3)->{stdout};
    like $out, qr/^length=300000$/m, 'full disk: a body that fits is spilled and read whole';
    like $out, qr/^md5=${\ md5_hex($fits)}$/m, '... byte for byte';
    my ($again) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
    is $again, $pid, 'full disk: the same worker still serves';
    $d->stop;
    system('umount', $spill) == 0 or diag "umount $spill failed: $?";
}

done_testing;
