# Limits on a worker (issue 10 item 2): max_rss and max_unshared recycle a
# worker after the request that took it past the limit (that response is
# whole; one log line names the limit and the figure); slowlog_timeout logs
# where a slow script is, once, and lets it finish; listen_backlog reaches
# listen(2).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp ();
use Time::HiRes qw(time);
use FcgiSpawn::Test;

sub pid_of { my ($out) = @_; return $out =~ /(?:^|\s)(\d+)\s*$/ ? $1 : 'none' }

for my $case (['--max-rss', '60M', 'grow.pl', 'resident memory', 'max_rss'],
              ['--max-unshared', '40M', 'grow.pl', 'private memory', 'max_unshared']) {
    my ($flag, $limit, $script, $what, $key) = @$case;
    my $d = start_daemon(workers => 1, args => [$flag, $limit]);
    my $first = pid_of(scalar fcgi_request($d, 'pid.pl'));
    is pid_of(scalar fcgi_request($d, 'pid.pl')), $first, "$key: a small worker stays";
    my ($out, $err, $rc) = fcgi_request($d, $script);
    my $r = parse_cgi($out);
    is $r->{status}, 200, "$key: the request that crossed the limit is answered";
    like $r->{body}, qr/^\w+ $first$/m, "... in full, by the same worker";
    my $next = pid_of(scalar fcgi_request($d, 'pid.pl'));
    ok $next ne 'none' && $next ne $first, "$key: the next request is served by a new worker"
        or diag "first $first, next $next";
    like $d->log_text, qr/worker recycled: $what [\d.]+ MiB is over $key \([\d.]+ MiB\)/,
        "$key: the log names the limit and the figure";
    is scalar(() = $d->log_text =~ /worker recycled/g), 1, "$key: once";
    $d->stop;
}
# Memory the master loaded before forking is shared, not private: 80 MiB
# of it puts every worker's resident set past max_unshared, yet none is
# recycled (and max_rss, which counts it, would).
{
    my $startup = File::Temp->new(SUFFIX => '.pl');
    print {$startup} "our \@shared_data = map { 'z' x 65536 } 1 .. 80 * 16;\n1;\n";
    close $startup;
    my $d = start_daemon(workers => 1, preload_script => ["$startup"], args => [qw(--max-unshared 40M)]);
    my @pids = map { pid_of(scalar fcgi_request($d, 'pid.pl')) } 1 .. 3;
    cmp_ok rss_kb($pids[0]), '>', 60 * 1024, 'max_unshared: the worker holds the 80 MiB (resident)';
    is_deeply [ @pids[1, 2] ], [ @pids[0, 0] ], 'max_unshared: shared memory does not count'
        or diag $d->log_text;
    $d->stop;
}

# slowlog_timeout: a request past it has its script's backtrace logged,
# once, naming each sub and line it is in, and runs on to the end (its
# sleep is not cut short: no signal reaches the script).
{
    my $d = start_daemon(workers => 1, args => [qw(--slowlog-timeout 1)]);
    my $t0 = time;
    my ($out) = fcgi_request($d, 'slow.pl', query => '2');
    my $took = time - $t0;
    my $r = parse_cgi($out);
    is $r->{status}, 200, 'slowlog: the slow request is answered';
    like $r->{body}, qr/^done \d+$/m, '... in full';
    cmp_ok $took, '>=', 2.4, sprintf('... after its whole sleep and spin (%.1f s)', $took);
    my $log = $d->log_text;
    my $script = script_path('slow.pl');
    like $log, qr/\Q$script\E: slow request: running for 1 s; its backtrace follows/,
        'slowlog: the slow request is named';
    like $log, qr/main::inner at \Q$script\E line 13\n.*main::outer at \Q$script\E line 19\n.*main program at \Q$script\E line 24$/m,
        'slowlog: the backtrace names both subs and their lines, innermost first'
        or diag $log;
    is scalar(() = $log =~ /backtrace, innermost first/g), 1, 'slowlog: logged once';
    fcgi_request($d, 'hello.pl');
    is scalar(() = $d->log_text =~ /slow request/g), 2, 'slowlog: a quick request is not logged';

    # A script busy in Perl is caught where it is, while it runs, even one
    # that ignores SIGPIPE (no signal is involved).
    $r = parse_cgi(scalar fcgi_request($d, 'cpu-loop.pl', query => '2stubborn'));
    like $r->{body}, qr/^done \d+ \d+$/m, 'slowlog: a busy script runs to its end';
    my $loop = script_path('cpu-loop.pl');
    like $d->log_text, qr/main program at \Q$loop\E line 18\n.*cpu-loop finished/s,
        'slowlog: its backtrace is logged while it runs (before its last line)';
    $d->stop;
    like $d->log_text, qr/slow requests: 2\)/, 'slowlog: counted in the scoreboard';

    # fork isolation: the script runs in the request's child, which no
    # signal-free way reaches; the slow request is still logged.
    $d = start_daemon(workers => 1, isolation => 'fork', args => [qw(--slowlog-timeout 1)]);
    $r = parse_cgi(scalar fcgi_request($d, 'slow.pl', query => '1.5'));
    is $r->{status}, 200, 'slowlog, fork isolation: answered';
    like $d->log_text, qr/slow request: running for 1 s; no backtrace in fork isolation/,
        'slowlog, fork isolation: logged without a backtrace';
    $d->stop;
}

# listen_backlog reaches listen(2): a TCP listener's Send-Q in `ss -ltn`
# is its backlog. `--backlog` stays as an alias.
for my $flag ('--listen-backlog', '--backlog') {
    my $d = start_daemon(workers => 1, tcp => 1, args => [$flag, 7]);
    my ($port) = $d->listen =~ /:(\d+)$/;
    my ($line) = grep { /\s127\.0\.0\.1:$port\s/ } `ss -ltnH`;
    like $line // '', qr/^LISTEN\s+\d+\s+7\s/, "$flag 7: Send-Q 7 in ss -ltn" or diag `ss -ltn`;
    $d->stop;
}
done_testing;
