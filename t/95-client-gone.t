# A client that goes away (closes its connection, or sends
# FCGI_ABORT_REQUEST) stops the running script within 1 s, also a script
# that never writes; no thread of the worker busy-loops meanwhile; a script
# that ignores the stop costs its worker, which is replaced; the same
# through nginx when the HTTP client closes its connection.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $TICK = 100;    # USER_HZ: /proc stat times are in 1/100 s

# utime+stime per thread of $pid, in ticks: { tid => ticks }
sub thread_cpu {
    my ($pid) = @_;
    my %t;
    for my $f (glob "/proc/$pid/task/*/stat") {
        my $stat = slurp($f) or next;
        my ($tid) = $f =~ m{task/(\d+)/};
        $stat =~ s/^.*\)\s+//s;
        my @f = split ' ', $stat;
        $t{$tid} = $f[11] + $f[12];
    }
    return \%t;
}

# CPU seconds each thread of $pid used over $secs.
sub cpu_over {
    my ($pid, $secs) = @_;
    my $before = thread_cpu($pid);
    sleep $secs;
    my $after = thread_cpu($pid);
    return { map { $_ => ($after->{$_} - ($before->{$_} // 0)) / $TICK } keys %$after };
}

sub pid_of { my ($out) = @_; return ($out // '') =~ /(\d+)/ ? $1 : undef }

my $d = start_daemon(workers => 1);
my ($worker) = worker_pids($d);
ok $worker, "worker $worker";
my $log_mark = 0;
sub new_log { my $t = $d->log_text; my $new = substr $t, $log_mark; $log_mark = length $t; return $new }

# Starts cpu-loop on a raw connection and waits for its first line (the
# script runs).
sub start_loop {
    my ($query, %o) = @_;
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'cpu-loop.pl', query => $query || '20', %o);
    my ($recs, $why) = read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /start/ }, timeout => 10);
    is $why, 'done', 'the script started';
    return $s;
}

# Waits for the only worker to answer again; seconds since $t0.
sub served_again {
    my ($t0) = @_;
    my $pid = wait_for(sub { pid_of((fcgi_request($d, 'pid.pl', timeout => 5))[0]) }, 10);
    return ($pid, time - $t0);
}

# 1. The client closes its connection while the script spins.
{
    new_log();
    my $s = start_loop();
    my $spinning = cpu_over($worker, 0.5);
    cmp_ok((sort { $b <=> $a } values %$spinning)[0], '>', 0.1, 'the script was spinning (CPU measured)');
    my $t0 = time;
    close $s;
    my $stopped = wait_for(sub { $d->log_text =~ /cpu-loop\.pl: client went away; stopping the script/ }, 3);
    ok $stopped, 'one log line says why the script was stopped';
    # The script is gone: over the next second the worker's threads are
    # all quiet, the pump thread included (it used to spin on the
    # hung-up socket).
    sleep 0.2;
    my $cpu = cpu_over($worker, 1);
    my $busiest = (sort { $b <=> $a } values %$cpu)[0];
    cmp_ok $busiest, '<', 0.05, sprintf 'no busy thread while the client is gone (threads: %s)',
        join ', ', map { sprintf '%s %.2f s', $_, $cpu->{$_} } sort keys %$cpu;
    my $log = new_log();
    my ($pid, $took) = served_again($t0);
    is $pid, $worker, 'the same worker serves the next request';
    unlike $log, qr/cpu-loop finished/, 'the script did not run on';
    unlike $log, qr/script stopped|called at/, 'no backtrace for a client that left';
}

# Stop latency, measured alone: close, then ask the only worker for a page.
{
    my $s = start_loop();
    my $t0 = time;
    close $s;
    my ($pid, $took) = served_again($t0);
    is $pid, $worker, 'worker lives on';
    cmp_ok $took, '<', 1, sprintf 'client gone: the script stopped and the worker answered in %.0f ms', $took * 1000;
    diag sprintf 'client-gone stop latency (raw close): %.0f ms', $took * 1000;
}

# 2. FCGI_ABORT_REQUEST on a kept connection: the request ends with
# END_REQUEST within 1 s, the connection stays usable.
{
    new_log();
    my $s = start_loop(undef, keep_conn => 1);
    my $t0 = time;
    print {$s} fcgi_record(FCGI_ABORT_REQUEST, 1, '');
    my ($recs, $why) = read_records($s, timeout => 5);
    my $took = time - $t0;
    is $why, 'done', 'ABORT_REQUEST: END_REQUEST sent';
    cmp_ok $took, '<', 1, sprintf 'ABORT_REQUEST: the spinning script stopped in %.0f ms', $took * 1000;
    diag sprintf 'ABORT_REQUEST stop latency: %.0f ms', $took * 1000;
    print {$s} fcgi_request_bytes(2, 'pid.pl', keep_conn => 1);
    ($recs) = read_records($s, timeout => 5);
    is pid_of(collect_response($recs, 2)->{stdout}), $worker, 'the kept connection serves the next request';
    close $s;
    like new_log(), qr/cpu-loop\.pl: FCGI_ABORT_REQUEST received; stopping the script/, 'the abort is logged';
}

# 3. A script that ignores the stop ($SIG{PIPE} = 'IGNORE') costs its
# worker: replaced, and the client's end is no busy loop either.
{
    new_log();
    my $s = start_loop('20&stubborn');
    my $t0 = time;
    close $s;
    ok wait_for(sub { !running($worker) }, 3), 'the worker of a script that ignores the stop is gone';
    my $gone = time - $t0;
    cmp_ok $gone, '<', 1.5, sprintf 'within %.1f s', $gone;
    my ($pid) = served_again($t0);
    ok $pid && $pid != $worker, "a new worker ($pid) replaced it";
    like new_log(), qr/did not stop within [\d.]+ s of its client going away; replacing this worker/, 'logged';
    unlike $d->log_text, qr/cpu-loop finished/, 'the script was ended';
    $worker = $pid;
}
$d->stop;

# 4. fork isolation: the request's child is stopped.
{
    $d = start_daemon(workers => 1, args => ['--isolation', 'fork']);
    ($worker) = worker_pids($d);
    $log_mark = 0;
    my $s = start_loop();
    my $t0 = time;
    close $s;
    my ($pid, $took) = served_again($t0);
    ok $pid && $pid != $worker, 'fork mode: the next request is served (by a request child)';
    cmp_ok $took, '<', 1, sprintf 'fork mode: the request child stopped in %.0f ms', $took * 1000;
    is_deeply [worker_pids($d)], [$worker], 'fork mode: the worker lives on';
    # What the worker has left is the next request's child, forked ahead.
    my @children;
    wait_for(sub { @children = map { process_title($_) } worker_pids($worker); @children == 1 && $children[0] eq 'fcgi-spawn: spare child' }, 5);
    is_deeply \@children, ['fcgi-spawn: spare child'], 'no request child left, only the next one waiting';
    $d->stop;
}

# 5. Through nginx (kept connections and not): the HTTP client closes its
# connection; nginx closes the FastCGI one; the script stops.
for my $keep (1, 0) {
    $d = start_daemon(workers => 1);
    ($worker) = worker_pids($d);
    my $ngx = start_nginx($d, keep_conn => $keep);
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $ngx->port, Proto => 'tcp', Timeout => 5)
        or die "connect to nginx: $!";
    print {$c} "GET /cpu-loop.pl?20 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    ok wait_for(sub { my $t = thread_cpu($worker); (sort { $b <=> $a } values %$t)[0] > 10 }, 5),
        "nginx (keep_conn $keep): the script runs";
    my $t0 = time;
    close $c;
    ok wait_for(sub { $d->log_text =~ /cpu-loop\.pl: client went away; stopping the script/ }, 3),
        "nginx (keep_conn $keep): the script is stopped";
    my $res = http_get($ngx, '/pid.pl');
    my $took = time - $t0;
    is pid_of($res->{content}), $worker, "nginx (keep_conn $keep): the same worker answers the next page";
    cmp_ok $took, '<', 1, sprintf 'nginx (keep_conn %d): answered %.0f ms after the client left', $keep, $took * 1000;
    diag sprintf 'client-gone stop latency through nginx (keep_conn %d): %.0f ms', $keep, $took * 1000;
    my $cpu = cpu_over($worker, 0.5);
    cmp_ok((sort { $b <=> $a } values %$cpu)[0], '<', 0.03, "nginx (keep_conn $keep): no busy thread afterwards");
    $ngx->stop;
    $d->stop;
}

done_testing;
