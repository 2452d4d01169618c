# The pool's status page and health check: status_path and ping_path,
# answered by a worker from the scoreboard without running Perl, behind a
# real nginx with the shipped recipe's location (this host only), and
# through `fcgi-spawn status` / `fcgi-spawn ping`. The page shows a busy
# worker with its script and elapsed time, counts every request, and keeps
# its counters across recycled and crashed workers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use POSIX ();
use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(sleep);
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

my @pages = ('--status-path', '/fcgi-status', '--ping-path', '/fcgi-ping');
my $d = start_daemon(workers => 2, args => \@pages);

# The shipped nginx site, moved to a free loopback port and our socket.
my $port = free_port();
my $ngx = start_nginx_site(recipe_text('nginx/fcgi-spawn.conf',
    'listen 80;' => "listen 127.0.0.1:$port;",
    'unix:/run/fcgi-spawn/fcgi.sock' => 'unix:' . $d->socket,
    '/srv/www' => scripts_dir()), $d->dir, port => $port);
my $base = "http://127.0.0.1:$port";
my $http = HTTP::Tiny->new(max_redirect => 0, timeout => 30, keep_alive => 0);

my $res = $http->get("$base/fcgi-ping");
is $res->{status}, 200, 'ping through nginx: 200';
is $res->{content}, "pong\n", 'ping answers pong';
like $res->{headers}{'content-type'}, qr{^text/plain}, 'ping is text/plain';

# Another loopback address is another host to nginx: the recipe keeps the
# pages for 127.0.0.1.
my $other = HTTP::Tiny->new(timeout => 10, keep_alive => 0, local_address => '127.0.0.2');
is $other->get("$base/fcgi-status")->{status}, 403, 'status from another address: 403 (recipe)';

# Adds no test of its own: it is polled.
sub status_json {
    my $r = $http->get("$base/fcgi-status?json");
    die "status?json: $r->{status} $r->{content}" unless $r->{status} == 200;
    return decode_json($r->{content});
}

$res = $http->get("$base/fcgi-status?json");
is $res->{status}, 200, 'status?json: 200';
like $res->{headers}{'content-type'}, qr{^application/json}, 'JSON content type';
my $before = status_json();
for my $field (qw(pool start_time start_since generation accepted queue idle_workers
    active_workers total_workers max_active_workers slow_requests recycled_workers
    crashed_workers workers)) {
    ok exists $before->{$field}, "JSON pool field $field";
}
is $before->{total_workers}, 2, 'two workers';
is $before->{generation}, 1, 'generation 1';
for my $field (qw(slot pid state start_time start_since requests busy elapsed_us
    last_request_duration_us script rss_bytes private_bytes)) {
    ok exists $before->{workers}[0]{$field}, "JSON worker field $field";
}
is_deeply [ sort map { $_->{pid} } @{ $before->{workers} } ], [ worker_pids($d) ],
    'the workers listed are the daemon\'s children';

# accepted grows by the requests made (plus the status request itself).
$http->get("$base/hello.pl") for 1 .. 5;
$http->get("$base/missing.pl");
my $after = status_json();
is $after->{accepted} - $before->{accepted}, 7, 'accepted grew by 6 requests + this status request';
ok((grep { $_->{rss_bytes} > 1_000_000 && $_->{private_bytes} > 0 } @{ $after->{workers} }),
    'a worker that served reports its RSS and private memory');

# A slow request: one worker busy with its script, for a growing time.
my $kid = fork // die "fork: $!";
if (!$kid) {
    HTTP::Tiny->new(timeout => 30)->get("$base/sleep.pl?3");
    POSIX::_exit(0);
}
my $busy;
ok wait_for(sub {
    my $s = decode_json($http->get("$base/fcgi-status?json")->{content});
    ($busy) = grep { $_->{script} =~ m{/sleep\.pl$} && $_->{busy} } @{ $s->{workers} };
    $busy && $busy->{elapsed_us} > 200_000;
}, 10), 'status shows a worker busy with sleep.pl for over 0.2 s';
is $busy->{state}, 'busy', 'its state is busy';
my $full = $http->get("$base/fcgi-status?full")->{content};
like $full, qr{^active workers:\s+2$}m, 'two active: the slow one and the status request';
my ($head, @rows) = map { [ split ' ' ] } grep { /^(?:slot|\d)/ } split /\n/, (split /\n\n/, $full)[1];
is scalar(@rows), 2, 'full text: a row per worker';
my %col = map { $head->[$_] => $_ } 0 .. $#$head;
my ($row) = grep { $_->[-1] =~ m{/sleep\.pl$} } @rows;
ok $row, 'full text: a row names the script' or diag $full;
is $row && $row->[ $col{state} ], 'busy', 'full text: that worker is busy';
my $elapsed = $row && $row->[ $col{elapsed_us} ];
ok $elapsed && $elapsed > 200_000, "full text gives its elapsed time (" . ($elapsed // "none") . " us)";
like $full, qr{^max active workers:\s+2$}m, 'max active workers: 2';
my $text = $http->get("$base/fcgi-status")->{content};
like $text, qr/^accepted:\s+\d+$/m, 'text: accepted';
unlike $text, qr/^slot /m, 'text without ?full has no worker rows';
waitpid $kid, 0;

# Prometheus / OpenMetrics: every line well formed, every sample typed.
for my $format (qw(prometheus openmetrics)) {
    my $r = $http->get("$base/fcgi-status?$format");
    is $r->{status}, 200, "$format: 200";
    my (%type, @bad, $samples);
    my @lines = split /\n/, $r->{content};
    my $eof = $format eq 'openmetrics' ? pop @lines : undef;
    is $eof, '# EOF', 'openmetrics ends with # EOF' if $format eq 'openmetrics';
    my $name = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
    for (@lines) {
        if (/^# HELP ($name) \S.*$/) { next }
        if (/^# TYPE ($name) (counter|gauge)$/) { $type{$1} = $2; next }
        if (/^($name)(\{$name="[^"\\\n]*"(?:,$name="[^"\\\n]*")*\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$/) {
            my $family = $1;
            $family =~ s/_total$// if !$type{$family};
            push @bad, "untyped: $_" unless $type{$family};
            $samples++;
            next;
        }
        push @bad, $_;
    }
    is_deeply \@bad, [], "$format: every line is HELP, TYPE or a typed sample";
    ok $samples > 20, "$format: $samples samples";
    like $r->{content}, qr/^fcgi_spawn_accepted_total \d+$/m, "$format: accepted counter";
    like $r->{content}, qr/^fcgi_spawn_worker_rss_bytes\{slot="\d+",pid="\d+"\} \d+$/m,
        "$format: per-worker series labelled by slot and pid";
}

# The CLI, from the daemon's own settings.
my $cfg = $d->dir . '/status.toml';
spew($cfg, sprintf qq{listen = "%s"\nstatus_path = "/fcgi-status"\nping_path = "/fcgi-ping"\n}, $d->socket);
sub cli {
    my (@args) = @_;
    my $out = $d->dir . '/cli.out';
    my $err = $d->dir . '/cli.err';
    system(join ' ', map({ quotemeta } bin_path(), @args), ">$out", "2>$err");
    return ($? >> 8, slurp($out), slurp($err));
}
my ($rc, $out, $err) = cli('ping', '--config', $cfg);
is $rc, 0, 'fcgi-spawn ping --config: exit 0';
is $out, "pong\n", 'and prints pong';
($rc, $out) = cli('status', '--config', $cfg, '--json');
is $rc, 0, 'fcgi-spawn status --json: exit 0';
is decode_json($out)->{total_workers}, 2, 'its JSON parses';
($rc, $out) = cli('status', '--connect', $d->socket, '--status-path', '/fcgi-status');
is $rc, 0, 'fcgi-spawn status --connect --status-path: exit 0';
like $out, qr/^accepted:\s+\d+$/m, 'prints the text page';
is scalar(() = $out =~ /^\d+\s+\d+\s+(?:idle|busy)\s/mg), 2, 'with a row per worker';
($rc, $out) = cli('status', '--config', $cfg, '--brief');
unlike $out, qr/^slot /m, '--brief: the pool only';
($rc, $out, $err) = cli('ping', '--connect', $d->socket);
is $rc, 1, 'ping without a ping_path: exit 1';
like $err, qr/ping_path is not configured/, 'and says so';
($rc, $out, $err) = cli('ping', '--connect', $d->socket, '--ping-path', '/elsewhere');
is $rc, 1, 'ping of a path the daemon does not serve: exit 1';
like $err, qr/answered \/elsewhere with status 404/, 'and says what it got';

# Crashes are counted and survive the worker.
my $crashed = status_json()->{crashed_workers};
for my $how (qw(kill exit)) {
    fcgi_request($d, 'crash.pl', query => "how=$how", timeout => 20);
}
ok wait_for(sub { status_json()->{crashed_workers} == $crashed + 2 }, 10),
    'crashed_workers counts a worker killed by a signal and one that exited non-zero';
ok wait_for(sub { scalar(worker_pids($d)) == 2 }, 10), 'the pool is whole again';
stop_server($ngx);
$d->stop;

($rc, $out, $err) = cli('ping', '--config', $cfg);
is $rc, 1, 'ping of a stopped daemon: exit 1';
like $err, qr/cannot connect to .*is the daemon running/, 'and says it cannot connect';

# Recycled workers: counted, and the pool's counters outlive them.
$d = start_daemon(workers => 1, max_requests => 2, args => \@pages);
fcgi_request($d, 'hello.pl') for 1 .. 5;
my $status = sub {
    decode_json(fcgi_request($d, '/fcgi-status', query => 'json',
        params => { SCRIPT_NAME => '/fcgi-status' }) =~ s/^.*?\r?\n\r?\n//sr);
};
my $s = $status->();
is $s->{accepted}, 6, 'accepted: 5 requests and this one, over three workers';
is $s->{recycled_workers}, 2, 'two workers recycled after 2 requests each';
ok $s->{workers}[0]{requests} <= 1, 'the third worker has served 1 request so far';
$d->stop;

# --workers 0: the one process answers the pages from a scoreboard of its own.
$d = start_daemon(workers => 0, args => \@pages);
fcgi_request($d, 'hello.pl') for 1 .. 2;
$s = $status->();
is $s->{accepted}, 3, '--workers 0: accepted counts its requests';
is $s->{total_workers}, 1, '--workers 0: one worker, the process itself';
is $s->{workers}[0]{pid}, $d->pid, '--workers 0: with the daemon\'s pid';
is $s->{workers}[0]{requests}, 2, '--workers 0: its requests served';
$d->stop;

done_testing;
