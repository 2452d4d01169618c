# SIGHUP reloads: the configuration is read again and a new generation of
# workers, forked from a new interpreter, takes over while the listening
# socket stays open and the old workers finish what they serve. Nothing is
# refused, dropped, or made to wait for an old worker's slow request; a bad
# configuration is refused and the running generation serves on; with
# NOTIFY_SOCKET the master tells systemd READY / RELOADING / STOPPING.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $served = qr/^V=(\S+) pid=(\d+) end$/m;

# The daemon's configuration file; the flags start_daemon gives override it.
sub config_file {
    my ($dir, $v, @more) = @_;
    my $file = "$dir/fcgi-spawn.toml";
    spew($file, qq{env = ["RELOAD_V=$v"]\npreload = ["CGI"]\n} . join('', map {"$_\n"} @more));
    return $file;
}

sub value_of {
    my ($d) = @_;
    my ($out) = fcgi_request($d, 'reload-env.pl');
    return $out =~ $served ? $1 : "no answer: $out";
}

sub hup_until {
    my ($d, $v, $timeout) = @_;
    kill 'HUP', $d->pid;
    return wait_for(sub { value_of($d) eq $v }, $timeout || 10);
}

sub count_of { my ($d, $re) = @_; my $n = () = $d->log_text =~ /$re/g; $n }

subtest 'ten reloads under load through nginx: no failed request' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $cfg = config_file($dir, 0);
    my $d = start_daemon(workers => 2, args => [ '--config', $cfg ]);
    # Every answer must be a whole page of some generation.
    my $lua = "$dir/check.lua";
    spew($lua, <<'LUA');
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.match(body, "^V=%d+ pid=%d+ end\n$") then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("bad pages: %d\n", total))
end
LUA
    for my $keep (0, 1) {
        my $ngx = start_nginx($d, keep_conn => $keep);
        # The same load without reloads, for comparison (the machine is
        # shared: its figures move with what else runs).
        my $quiet = wrk($ngx->url('/reload-env.pl'), conns => 8, secs => 2, lua => $lua);
        my $base = value_of($d);
        my ($reloads, $hup_secs) = (0, 0);
        my $r = wrk($ngx->url('/reload-env.pl'), conns => 8, secs => 8, lua => $lua, during => sub {
            sleep 1;
            my $t0 = time;
            for my $i (1 .. 10) {
                my $v = $base + $i;
                config_file($dir, $v);
                $reloads++ if hup_until($d, $v);
                sleep 0.2;
            }
            $hup_secs = time - $t0;
        });
        my ($bad) = $r->{output} =~ /^bad pages: (\d+)$/m;
        is $reloads, 10, "keep_conn $keep: each of 10 reloads served its new value under load";
        cmp_ok $hup_secs, '<', 7, "keep_conn $keep: the reloads happened while wrk ran";
        cmp_ok $r->{requests}, '>', 100, "keep_conn $keep: requests went through";
        is $r->{errors}, 0, "keep_conn $keep: no socket error, no non-2xx answer";
        is $bad, 0, "keep_conn $keep: every page whole";
        diag sprintf 'reload under load (nginx, keep_conn %s, 2 workers, 8 connections): '
            . '%d requests, %.0f req/s, p50 %.2f ms, p99 %.2f ms over 8 s with 10 reloads',
            $keep ? 'on' : 'off', $r->{requests}, $r->{rps}, $r->{p50}, $r->{p99};
        diag sprintf '    the same without reloads, just before: %.0f req/s, p50 %.2f ms, p99 %.2f ms',
            $quiet->{rps}, $quiet->{p50}, $quiet->{p99};
        like $ngx->error_log_text, qr/\A(?:(?!\[error\]).)*\z/s, "keep_conn $keep: nginx logged no error";
        $ngx->stop;
    }
    is count_of($d, qr/reloaded: generation \d+ serving/), 20, '20 generations after the first';
    my @ms = sort { $a <=> $b } $d->log_text =~ /reloaded: generation \d+ serving \(2 workers, ready in (\d+) ms\)/g;
    diag sprintf 'time from HUP to the new generation forked, under that load: median %d ms, max %d ms',
        $ms[ $#ms / 2 ], $ms[-1];
    like $d->log_text, qr/ready: .* generation 1\)/, 'the first is generation 1';
    $d->stop;
};

subtest 'a slow request finishes in its old worker while the new generation serves' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $cfg = config_file($dir, 'old');
    my $d = start_daemon(workers => 1, args => [ '--config', $cfg ]);
    my $sock = raw_connect($d);
    print {$sock} fcgi_request_bytes(1, 'sleep-timed.pl', query => '3');
    my (undef, $why) = read_records($sock,
        until => sub { $_[0]{type} == 6 && $_[0]{content} =~ /start/ }, timeout => 10);
    is $why, 'done', 'the slow request runs';
    config_file($dir, 'new');
    my $t0 = time;
    ok hup_until($d, 'new', 5), 'the new generation answers';
    cmp_ok time - $t0, '<', 2, 'at once, not after the slow request';
    my ($recs) = read_records($sock, timeout => 10);
    my $r = collect_response($recs, 1);
    ok $r->{ended}, 'the slow request ended';
    like $r->{stdout}, qr/^slept (3\.\d+)$/m, 'its sleep was not cut short';
    like $r->{stdout}, qr/^done \d+$/m, 'its page is whole';
    ok wait_for(sub { $d->log_text =~ /worker \d+ of generation 1 exited with status 0/ }, 5),
        'then the old worker left';
    $d->stop;
};

subtest 'a bad configuration is refused and the running generation serves on' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $cfg = config_file($dir, 'good');
    my $d = start_daemon(workers => 2, args => [ '--config', $cfg ]);
    my @before = worker_pids($d);

    spew($cfg, qq{env = ["RELOAD_V=broken"\n});
    kill 'HUP', $d->pid;
    ok wait_for(sub { $d->log_text =~ /reload refused, generation 1 serves on: \S*fcgi-spawn.toml: TOML parse error at line 1, column \d+; invalid array/ }, 5),
        'a TOML syntax error: refused, naming the file and line';
    spew($cfg, qq{env = ["RELOAD_V=missing"]\npreload = ["CGI", "No::Such::Module"]\n});
    kill 'HUP', $d->pid;
    ok wait_for(sub { $d->log_text =~ /reload refused, generation 1 serves on: --preload No::Such::Module: Can't locate/ }, 10),
        'a preload that fails: refused, naming the module';
    spew("$dir/startup.pl", "die qq{no database today\\n};\n");
    config_file($dir, 'startup', qq{preload_script = ["$dir/startup.pl"]});
    kill 'HUP', $d->pid;
    ok wait_for(sub { $d->log_text =~ /reload refused, generation 1 serves on: --preload-script \S*startup.pl: .*no database today/ }, 10),
        'a preload script that dies: refused, with its message';
    spew($cfg, qq{env = ["RELOAD_V=typo"]\nworkerz = 3\n});
    kill 'HUP', $d->pid;
    ok wait_for(sub { $d->log_text =~ /reload refused.*?workerz/s }, 5), 'an unknown key: refused, naming it';
    is count_of($d, qr/reload refused/), 4, 'one line each';
    is value_of($d), 'good', 'the old generation serves';
    is_deeply [ sort(worker_pids($d)) ], [ sort @before ], 'with the same workers';

    # The master still forks replacements from the old interpreter.
    kill 'KILL', $before[0];
    ok wait_for(sub { my @w = worker_pids($d); @w == 2 && !grep { $_ == $before[0] } @w }, 5),
        'a worker that dies is replaced';
    is value_of($d), 'good', 'by one of the running generation' for 1 .. 2;

    config_file($dir, 'fixed', 'socket_mode = "0600"');
    ok hup_until($d, 'fixed'), 'a good reload after them works';
    like $d->log_text, qr/reload: socket_mode changed; that needs a restart, the running values stay/,
        'a restart-only setting is named and kept';
    is sprintf('%04o', (stat $d->socket)[2] & 07777), '0660', 'the socket kept its mode';
    # Logged once every new worker is idle, which may be a moment after
    # the first one answers.
    ok wait_for(sub { $d->log_text =~ /reloaded: generation 2 serving/ }, 5),
        'the refused ones used no generation';
    # The new interpreter owns the process's environment: what a script
    # sets in %ENV reaches the programs it runs.
    my ($out) = fcgi_request($d, 'child-env.pl', query => 'x=1');
    like $out, qr/^child SET_BY_SCRIPT=yes-x=1$/m, "after a reload a script's child sees its %ENV";
    $d->stop;
};

subtest '--precompile: a reload precompiles again' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    mkdir "$dir/www";
    my $script = "$dir/www/page.pl";
    my $page = sub {
        my ($v) = @_;
        spew($script, <<"PL");
our \$COMPILED_IN;
BEGIN { \$COMPILED_IN = \$ENV{FCGI_SPAWN_PRECOMPILE} ? 'the master' : 'a worker' }
print "Content-Type: text/plain\\r\\n\\r\\n";
print "$v compiled in \$COMPILED_IN\\n";
PL
    };
    $page->('v1');
    my $d = start_daemon(workers => 2, root => "$dir/www", isolation => 'registry',
        args => [ '--precompile', "$dir/www/*.pl", '--precompile-strict' ]);
    my $get = sub { my ($out) = fcgi_request($d, $script); $out =~ /^(v\d compiled in .*)$/m ? $1 : $out };
    is $get->(), 'v1 compiled in the master', 'precompiled at start';
    $page->('v2');
    utime time + 5, time + 5, $script;
    kill 'HUP', $d->pid;
    ok wait_for(sub { count_of($d, qr/reloaded: generation 2/) }, 10), 'reloaded';
    is count_of($d, qr/precompiled 1 script\(s\)/), 2, 'the log says it precompiled again';
    is $get->(), 'v2 compiled in the master', 'the new generation serves the new version, compiled in the master';

    my @workers = worker_pids($d);
    spew($script, "print 'v3\n';\nsyntax error here (\n");
    kill 'HUP', $d->pid;
    ok wait_for(sub { $d->log_text =~ /reload refused, generation 2 serves on: --precompile-strict: 1 script\(s\) did not compile/ }, 10),
        'with --precompile-strict a script that does not compile refuses the reload';
    is_deeply [ sort(worker_pids($d)) ], [ sort @workers ], 'generation 2 serves on';
    $d->stop;
};

subtest 'sd_notify: READY, RELOADING, READY, STOPPING' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $path = "$dir/notify.sock";
    my $notify = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die "bind $path: $!";
    my $cfg = config_file($dir, 1);
    my $d = do {
        local $ENV{NOTIFY_SOCKET} = $path;
        start_daemon(workers => 1, args => [ '--config', $cfg ]);
    };
    my @got;
    my $next = sub {
        my $s = IO::Select->new($notify);
        return undef unless $s->can_read(10);
        $notify->recv(my $msg, 4096);
        push @got, $msg;
        return $msg;
    };
    like $next->(), qr/\AREADY=1\nSTATUS=1 workers serving, generation 1\nMAINPID=${\ $d->pid}\z/, 'READY=1 once it serves';
    config_file($dir, 2);
    kill 'HUP', $d->pid;
    like $next->(), qr/\ARELOADING=1\nMONOTONIC_USEC=\d+\n/, 'RELOADING=1 with MONOTONIC_USEC at a HUP';
    like $next->(), qr/\AREADY=1\nSTATUS=1 workers serving, generation 2\n/, 'READY=1 when the new generation serves';
    is value_of($d), 2, 'it does';
    spew($cfg, "env = [\n");
    kill 'HUP', $d->pid;
    like $next->(), qr/\ARELOADING=1\n/, 'a refused reload: RELOADING=1';
    like $next->(), qr/\ASTATUS=reload refused: .*TOML parse error/, 'then STATUS saying why';
    like $next->(), qr/\AREADY=1\n.*generation 2; last reload refused/s, 'then READY=1';
    kill 'TERM', $d->pid;
    like $next->(), qr/\ASTOPPING=1\n/, 'STOPPING=1 at a stop';
    $d->stop;
    unlike $d->log_text, qr/NOTIFY_SOCKET/, 'no complaint about the socket';
};

subtest 'drain_timeout: an old worker still busy is killed, and logged' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $cfg = config_file($dir, 'old', 'drain_timeout = 1');
    my $d = start_daemon(workers => 1, args => [ '--config', $cfg ]);
    my @old = worker_pids($d);
    my $sock = raw_connect($d);
    print {$sock} fcgi_request_bytes(1, 'sleep-timed.pl', query => '30');
    my (undef, $why) = read_records($sock,
        until => sub { $_[0]{type} == 6 && $_[0]{content} =~ /start/ }, timeout => 10);
    is $why, 'done', 'a long request runs';
    config_file($dir, 'new', 'drain_timeout = 1');
    my $t0 = time;
    ok hup_until($d, 'new', 5), 'the new generation serves';
    ok wait_for(sub { $d->log_text =~ /worker $old[0] of generation 1 still busy 1 s after the reload \(drain_timeout\); killing it/ }, 5),
        'past drain_timeout the old worker is killed, with a log line';
    cmp_ok time - $t0, '<', 4, 'about drain_timeout after the reload';
    ok wait_for(sub { !running($old[0]) }, 5), 'it is gone';
    my ($recs) = read_records($sock, timeout => 5);
    ok !collect_response($recs, 1)->{ended}, 'its client sees the connection end without a response end';
    is value_of($d), 'new', 'the pool serves on';
    $d->stop;
};

subtest "twenty reloads: the master's memory stays bounded" => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $cfg = config_file($dir, 0);
    my $d = start_daemon(workers => 1, isolation => 'registry',
        args => [ '--config', $cfg, '--precompile', scripts_dir() . '/*.pl' ]);
    my %rss;
    for my $i (1 .. 20) {
        config_file($dir, $i);
        ok(hup_until($d, $i), "reload $i") or last;
        $rss{$i} = rss_kb($d->pid) if $i == 2 || $i == 20;
    }
    my $growth = $rss{20} - $rss{2};
    diag sprintf "master RSS after reload 2: %d kB, after reload 20: %d kB (%+d kB, %.0f kB per reload)",
        $rss{2}, $rss{20}, $growth, $growth / 18;
    # A leaked interpreter (preloads and precompiled scripts) is several MB:
    # one per reload would be far past this.
    cmp_ok $growth, '<', 3 * 1024, 'no interpreter is kept per reload';
    $d->stop;
};

subtest 'the log may move and change its format at a reload' => sub {
    my $dir = File::Temp::tempdir(CLEANUP => 1, TMPDIR => 1);
    my $cfg = config_file($dir, 'one', qq{log = "$dir/one.log"});
    # Without start_daemon's --log flag, which would override the file.
    my @argv = (bin_path(), 'run', '--listen', "$dir/fcgi.sock", '--config', $cfg,
        '--workers', 1, '--root', scripts_dir());
    my $pid = Test::FCGI::Spawn::start_process(argv => \@argv, stdout => "$dir/stderr", stderr => "$dir/stderr");
    my $d = bless { dir => $dir, listen => "$dir/fcgi.sock", log => "$dir/one.log",
        stderr => "$dir/stderr", pid => $pid, argv => \@argv }, 'FcgiSpawn::Test::Daemon';
    ok wait_for(sub { slurp("$dir/one.log") =~ /ready:/ }, 10), 'logging to the first file';
    config_file($dir, 'two', qq{log = "$dir/two.log"}, 'log_format = "plain"');
    ok hup_until($d, 'two'), 'reloaded';
    ok wait_for(sub { -e "$dir/two.log" && slurp("$dir/two.log") =~ /reloaded: generation 2/ }, 5),
        'the master writes to the new file';
    like slurp("$dir/two.log"), qr/^fcgi-spawn\[$pid\]: info: reloaded/m, 'in the new format (plain)';
    like slurp("$dir/one.log"), qr/SIGHUP: reloading/, 'what came before stays in the old one';
    $d->{log} = "$dir/two.log";
    $d->stop;
    like slurp("$dir/two.log"), qr/stopped/, 'to the end';
    is slurp("$dir/stderr"), '', 'nothing on stderr';
};

subtest '--workers 0: HUP says reload needs a pool, and serving goes on' => sub {
    my $d = start_daemon(workers => 0);
    kill 'HUP', $d->pid;
    sleep 0.2;
    my ($out) = fcgi_request($d, 'hello.pl');
    like $out, qr/Hello/i, 'still serving';
    like $d->log_text, qr/SIGHUP: reload needs a pool of workers/, 'and says why nothing happened';
    $d->stop;
};

done_testing;
