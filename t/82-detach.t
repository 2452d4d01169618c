# Started from an init script: `run --detach` (and FCGI::Spawn's
# `fcgi_spawn` without -nd, which went to the background too) returns once
# the pool serves, with the master in a session of its own, stdin on
# /dev/null and stdout/stderr on the log; a start that fails returns 1 and
# prints why; a master that dies while starting is reported, not waited
# for. The daemon is stopped by the pid its pid file names.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

my $bin = bin_path();
my $dir = tempdir('fcgi-spawn-detach-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/$_", 0755 for qw(www etc);
spew("$dir/www/hello.pl", qq{print "Content-Type: text/plain\\r\\n\\r\\nhello from \$\$\\n";\n});

my @started;    # pid files of detached daemons, stopped at the end whatever happens
END {
    for my $file (@started) {
        my ($pid) = (eval { slurp($file) } // '') =~ /(\d+)/ or next;
        kill 'KILL', $pid if kill 0, $pid;
    }
}

# A command, its exit code, its output (both streams), and how long it took.
sub run_cmd {
    my @cmd = @_;
    my $t0 = time;
    my $out = qx{@cmd 2>&1 </dev/null};
    return ($? >> 8, $out, time - $t0);
}

sub gone {
    my ($pid) = @_;
    return wait_for(sub { !running($pid) }, 15);
}

sub client { return bless { dir => $dir, listen => $_[0], stopped => 1 }, 'FcgiSpawn::Test::Daemon' }

subtest 'run --detach needs a log' => sub {
    my ($rc, $out) = run_cmd($bin, 'run', '--listen', "$dir/nolog.sock", '--detach');
    is $rc, 2, 'exit 2';
    like $out, qr/detach: needs log \(--log FILE\)/, 'naming the key and what to give';
    ok !-e "$dir/nolog.sock", 'no socket made';
};

subtest 'run --detach: returns once serving, the master in the background' => sub {
    my ($sock, $pidf, $log) = ("$dir/d.sock", "$dir/d.pid", "$dir/d.log");
    push @started, $pidf;
    my ($rc, $out) = run_cmd($bin, 'run', '--listen', $sock, '--workers', 2, '--root', "$dir/www",
        '--detach', '--log', $log, '--pid-file', $pidf);
    is $rc, 0, 'the command exits 0' or diag $out;
    is $out, '', 'and prints nothing';
    ok -S $sock, 'the socket is there when it returns';
    my ($pid) = slurp($pidf) =~ /^(\d+)$/;
    ok $pid && kill(0, $pid), 'the pid file names a running master' or return;
    my ($stat) = slurp("/proc/$pid/stat") =~ /\)\s+(.*)/s;
    my (undef, undef, undef, $session) = split ' ', $stat;
    is $session, $pid, 'the master leads a session of its own (no controlling terminal to lose)';
    is readlink("/proc/$pid/fd/0"), '/dev/null', 'stdin is /dev/null';
    is readlink("/proc/$pid/fd/$_"), $log, "fd $_ is the log file" for 1, 2;
    like slurp($log), qr/info: ready: 2 workers serving/, 'the log says it serves';
    my ($o, $e, $r) = fcgi_request(client($sock), "$dir/www/hello.pl", timeout => 10);
    is $r, 0, 'a request is answered at once' or diag $e;
    like $o, qr/^hello from \d+$/m, 'by a worker';

    # logrotate: move the log away, USR1; the master's stdout/stderr follow.
    rename $log, "$log.1" or die "rename: $!";
    kill 'USR1', $pid;
    ok wait_for(sub { -e $log && (readlink("/proc/$pid/fd/2") // '') eq $log }, 10),
        'USR1: stderr follows the reopened log';

    kill 'TERM', $pid;
    ok gone($pid), 'TERM (the pid from the pid file) stops it';
    ok !-e $sock && !-e $pidf, 'socket and pid file removed';
};

subtest 'run --detach: a start that fails says why and leaves nothing' => sub {
    my ($sock, $pidf, $log) = ("$dir/f.sock", "$dir/f.pid", "$dir/f.log");
    push @started, $pidf;
    my ($rc, $out, $took) = run_cmd($bin, 'run', '--listen', $sock, '--workers', 1,
        '--detach', '--log', $log, '--pid-file', $pidf, '--preload', 'No::Such::Module');
    is $rc, 1, 'exit 1';
    like $out, qr/^fcgi-spawn: --preload No::Such::Module: Can't locate No\/Such\/Module\.pm/,
        'the reason, on the terminal';
    like slurp($log), qr/error: --preload No::Such::Module/, 'and in the log';
    ok !-e $sock && !-e $pidf, 'no socket, no pid file left';
};

subtest 'run --detach: a master that dies while starting is reported' => sub {
    my ($sock, $pidf, $log) = ("$dir/k.sock", "$dir/k.pid", "$dir/k.log");
    push @started, $pidf;
    spew("$dir/etc/die-hard.pl", "kill 'KILL', \$\$;\nsleep 5;\n1;\n");
    my ($rc, $out, $took) = run_cmd($bin, 'run', '--listen', $sock, '--workers', 1,
        '--detach', '--log', $log, '--pid-file', $pidf, '--preload-script', "$dir/etc/die-hard.pl");
    is $rc, 1, 'exit 1';
    like $out, qr/^fcgi-spawn: the daemon was killed by SIGKILL while starting; see \Q$log\E$/m,
        'saying how it ended and where to look';
    cmp_ok $took, '<', 5, 'without waiting for anything else';
};

subtest 'run --detach: a process a preload script left running does not hold the command' => sub {
    my ($sock, $pidf, $log) = ("$dir/b.sock", "$dir/b.pid", "$dir/b.log");
    push @started, $pidf, "$dir/bg.pid";
    spew("$dir/etc/background.pl", <<"PL");
my \$pid = fork;
if (defined \$pid && !\$pid) { sleep 30; require POSIX; POSIX::_exit(0) }
open my \$fh, '>', '$dir/bg.pid' or die \$!;
print \$fh "\$pid\\n";
close \$fh;
1;
PL
    my ($rc, $out, $took) = run_cmd($bin, 'run', '--listen', $sock, '--workers', 1, '--root', "$dir/www",
        '--detach', '--log', $log, '--pid-file', $pidf, '--preload-script', "$dir/etc/background.pl");
    is $rc, 0, 'exit 0' or diag $out;
    cmp_ok $took, '<', 10, 'at once, though the background process holds the pipe';
    my ($bg) = (eval { slurp("$dir/bg.pid") } // '') =~ /(\d+)/;
    ok $bg && running($bg), 'the background process still runs';
    my ($pid) = slurp($pidf) =~ /^(\d+)$/;
    kill 'TERM', $pid;
    kill 'KILL', $bg if $bg;
    ok gone($pid), 'stopped';
};

subtest 'fcgi_spawn without -nd goes to the background, as FCGI::Spawn did' => sub {
    symlink $bin, "$dir/fcgi_spawn" or die "symlink: $!";
    spew("$dir/etc/fcgi_spawn.conf", "n_processes 2\n");
    my ($sock, $pidf, $log) = ("$dir/fs.sock", "$dir/fs.pid", "$dir/fs.log");
    push @started, $pidf;
    my ($rc, $out) = run_cmd("$dir/fcgi_spawn", '-c', "$dir/etc", '-p', $pidf, '-l', $log, '-s', $sock,
        '-e', '--', '--root', "$dir/www");
    is $rc, 0, 'the init script gets exit 0' or diag $out, slurp($log);
    my ($pid) = slurp($pidf) =~ /^(\d+)$/;
    ok $pid && kill(0, $pid), 'the pid file names the running master' or return;
    ok wait_for(sub { worker_pids($pid) == 2 }, 5), 'n_processes 2 workers';
    my ($o, $e, $r) = fcgi_request(client($sock), "$dir/www/hello.pl", timeout => 10);
    like $o, qr/^hello from \d+$/m, 'serving' or diag $e;
    kill 'TERM', $pid;
    ok gone($pid), 'stopped by its pid file';

    ($rc, $out) = run_cmd("$dir/fcgi_spawn", '-s', "$dir/none.sock");
    is $rc, 2, 'without -l nor -nd: exit 2';
    like $out, qr/give -l LOGFILE \(or -nd to stay in the foreground/, 'saying what to give';
};

subtest 'contrib/sysvinit/fcgi-spawn under the real start-stop-daemon' => sub {
    my $ssd = (grep { -x } '/usr/sbin/start-stop-daemon', '/sbin/start-stop-daemon')[0]
        or return plan skip_all => 'no start-stop-daemon (Debian package dpkg)';
    my $init = FcgiSpawn::Recipe::contrib_path('sysvinit/fcgi-spawn');
    my $run = "$dir/init-run";
    my $pidf = "$run/fcgi-spawn.pid";
    push @started, $pidf;
    my $as = $> == 0 ? 'nobody' : getpwuid($>);
    spew("$dir/etc/init.toml", join '', ($> == 0 ? qq{user = "nobody"\n} : ()),
        qq{workers = 2\nroot = ["$dir/www"]\nlog_format = "plain"\n});
    spew("$dir/etc/default", join '', map { "$_\n" }
        "DAEMON=$bin", "CONFIG=$dir/etc/init.toml", "RUNDIR=$run", "LOG=$dir/init-log/fcgi-spawn.log",
        "RUNAS=$as", 'GRACE=5');
    local $ENV{FCGI_SPAWN_DEFAULTS} = "$dir/etc/default";
    my $log = "$dir/init-log/fcgi-spawn.log";

    my ($rc, $out) = run_cmd('sh', $init, 'start');
    is $rc, 0, 'start: exit 0' or diag $out, eval { slurp($log) };
    my ($pid) = (eval { slurp($pidf) } // '') =~ /^(\d+)$/;
    ok $pid && kill(0, $pid), 'the pid file names the running master' or return;
    like slurp($log), qr/^\d{4}-\d\d-\d\dT[\d:]+Z fcgi-spawn\[$pid\]: info: ready: 2 workers serving/m,
        'the log file gets timestamped lines (the command line overrides log_format = "plain")';
    my ($o, $e) = fcgi_request(client("$run/fcgi.sock"), "$dir/www/hello.pl", timeout => 10);
    like $o, qr/^hello from \d+$/m, 'serving on the socket' or diag $e;
    ($rc, $out) = run_cmd('sh', $init, 'start');
    is $rc, 0, 'start again: exit 0';
    like $out, qr/already running \(pid $pid\)/, 'saying it runs';
    ($rc, $out) = run_cmd('sh', $init, 'status');
    is $rc, 0, 'status: exit 0 (running)';
    ($rc, $out) = run_cmd('sh', $init, 'reload');
    is $rc, 0, 'reload: exit 0';
    ok wait_for(sub { slurp($log) =~ /reloaded: generation 2 serving/ }, 15), 'a new generation serves';
    ($rc, $out) = run_cmd('sh', $init, 'stop');
    is $rc, 0, 'stop: exit 0' or diag $out;
    ok !running($pid), 'the master is gone when stop returns';
    ok !-e "$run/fcgi.sock", 'the socket is removed';
    ($rc, $out) = run_cmd('sh', $init, 'status');
    is $rc, 3, 'status: exit 3 (not running, LSB)';
    ($rc, $out) = run_cmd('sh', $init, 'stop');
    is $rc, 0, 'stop when stopped: exit 0';
};

done_testing;
