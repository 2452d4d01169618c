# The first hour, as a new user meets it: the pid file in a root-owned
# directory with --user, the log reopened on USR1 as that user, no socket
# left behind after a stop or a failed start, `config` refusing what `run`
# would refuse, `request` exit codes and 403 reasons, `--version`, error
# messages (one OS error text, TOML carets, negative numbers), `--help`
# (signals, --workers 0, --user), and `deny` globs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use HTTP::Tiny;
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

my $bin = bin_path();
my $dir = tempdir('fcgi-spawn-first-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;

sub run_cmd {
    my @cmd = @_;
    my $out = qx{@cmd 2>&1};
    return ($? >> 8, $out);
}

# `run` that is expected to fail at start: its exit code, its output, and
# whether the socket file is gone afterwards.
sub failed_start {
    my ($sock, @flags) = @_;
    my ($rc, $out) = run_cmd($bin, 'run', '--listen', $sock, '--workers', 1, @flags);
    return ($rc, $out, !-e $sock);
}

subtest 'no socket left behind after a failed start' => sub {
    my $sock = "$dir/failed.sock";
    my ($rc, $out, $gone) = failed_start($sock, '--preload', 'No::Such::Module');
    is $rc, 1, 'a missing preload module stops the start';
    like $out, qr/--preload No::Such::Module: Can't locate/, 'naming it';
    ok $gone, 'and the socket is removed';

    mkdir "$dir/pid-is-a-dir";
    ($rc, $out, $gone) = failed_start($sock, '--pid-file', "$dir/pid-is-a-dir");
    is $rc, 1, 'a pid file that cannot be written stops the start';
    like $out, qr/cannot write pid file \Q$dir\E\/pid-is-a-dir: Is a directory \(os error 21\)$/m,
        'naming it, the OS error once';
    ok $gone, 'and the socket is removed';

    ($rc, $out, $gone) = failed_start($sock, '--user', 'no-such-user-xyz');
    is $rc, 2, 'an unknown --user is refused';
    like $out, qr/user: no-such-user-xyz: no such user/, 'naming the setting';
    ok $gone, 'before any socket is made';

    ($rc, $out, $gone) = failed_start($sock, '--socket-owner', 'no-such-user-xyz');
    is $rc, 2, 'an unknown --socket-owner is refused';
    ok $gone, 'before any socket is made';

    SKIP: {
        my ($runuser) = grep { -x } '/usr/sbin/runuser', '/sbin/runuser';
        skip 'needs root and runuser to start as another user', 3 unless $> == 0 && $runuser;
        my $open = "$dir/open";    # anyone may bind here, as in /tmp
        mkdir $open;
        chmod 01777, $open;
        my ($rc2, $out2) = run_cmd($runuser, '-u', 'nobody', '--', $bin, 'run', '--listen', "$open/s.sock",
            '--workers', 1, '--user', 'www-data');
        is $rc2, 1, 'a --user switch that fails after the bind (not root) stops the start';
        like $out2, qr/--user www-data: cannot set its groups \(run as root\)/, 'naming the flag';
        ok !-e "$open/s.sock", 'and the socket is removed';
    }

    ($rc, $out, $gone) = failed_start($sock, '--preload-script', "$dir/missing.pl");
    is $rc, 2, 'a missing preload script is refused';
    like $out, qr/preload_script: \Q$dir\E\/missing\.pl: No such file or directory \(os error 2\)$/m, 'naming it';
    ok $gone, 'before any socket is made';
};

subtest 'the socket goes at a stop, also with --workers 0' => sub {
    my $d = start_daemon(workers => 0);
    ok -S $d->socket, 'the socket exists while it serves';
    $d->stop;
    ok !-e $d->socket, 'and is removed at the stop';
};

# Every signal of the README's table, in the pool shape that has no pool:
# each does what the table says or says why it cannot, and none kills the
# daemon behind its back (USR1, QUIT and TTIN used to: rc 138, a core, a
# stopped process, the socket left behind).
subtest 'signals with --workers 0' => sub {
    for my $case (
        [ USR1 => qr/info: SIGUSR1: log reopened/ ],
        [ HUP  => qr/warning: SIGHUP: reload needs a pool of workers/ ],
        [ TTIN => qr/warning: SIGTTIN: no pool to resize/ ],
        [ TTOU => qr/warning: SIGTTOU: no pool to resize/ ],
    ) {
        my ($sig, $says) = @$case;
        my $d = start_daemon(workers => 0);
        kill $sig, $d->pid;
        ok wait_for(sub { $d->log_text =~ $says }, 5), "$sig: logged at once, not at the next request";
        my ($out, undef, $rc) = fcgi_request($d, 'hello.pl', timeout => 10);
        is $rc, 0, "$sig: it serves on";
        $d->stop;
        ok !-e $d->socket, "$sig: then TERM removes the socket";
    }
    for my $case ([ TERM => 'stopping gracefully' ], [ INT => 'stopping gracefully' ], [ QUIT => 'stopping now' ]) {
        my ($sig, $says) = @$case;
        my $d = start_daemon(workers => 0);
        kill $sig, $d->pid;
        is $d->wait_exit(10), 0, "$sig: exits 0";
        like $d->log_text, qr/SIG$sig: $says/, "$sig: says so";
        ok !-e $d->socket, "$sig: the socket is removed";
    }
};

subtest 'a signal during the start waits for it, in every pool shape' => sub {
    for my $workers (0, 1) {
        # A preload script that takes a second: the socket exists, the
        # daemon does not serve yet.
        my $slow = spew("$dir/slow-start-$workers.pl", "select undef, undef, undef, 1;\n1;\n");
        my $sock = "$dir/start-$workers.sock";
        my $log = "$dir/start-$workers.log";
        my $srv = start_server(name => 'fcgi-spawn', log => $log,
            argv => [ $bin, 'run', '--listen', $sock, '--workers', $workers, '--root', scripts_dir(),
                      '--preload-script', $slow ],
            ready => sub { -S $sock });
        kill 'USR1', $srv->{pid};
        ok wait_for(sub { slurp($log) =~ /SIGUSR1: log reopened/ }, 10),
            "--workers $workers: USR1 during the start is acted on once it serves";
        kill 'TERM', $srv->{pid};
        ok wait_for(sub { !running($srv->{pid}) }, 10), "--workers $workers: TERM then stops it";
        ok !-e $sock, "--workers $workers: no socket left";
        stop_server($srv);
    }
};

subtest 'a config file the user cannot read is named at config and at start' => sub {
    plan skip_all => 'needs root to switch users' if $> != 0;
    my $conf = spew("$dir/private.toml", qq{user = "www-data"\nroot = ["@{[ scripts_dir() ]}"]\nworkers = 1\n}, 0600);
    my $said = `$bin config --config $conf 2>&1`;
    like $said, qr{\Q$conf\E: not readable by www-data, whom the daemon runs as: every reload \(HUP\) will be refused},
        'config warns that reloads would be refused';
    my $d = start_daemon(workers => 1, args => ['--config', $conf]);
    like $d->log_text, qr{\Q$conf\E: not readable by www-data}, 'so does the start, in the log';
    $d->stop;
    chmod 0644, $conf;
    unlike `$bin config --config $conf 2>&1`, qr/not readable/, 'readable: no warning';
};

subtest '--user: pid file in a root-owned directory, log reopened on USR1, socket removed' => sub {
    plan skip_all => 'needs root to switch users' if $> != 0;
    my $rootdir = "$dir/root-owned";
    mkdir $rootdir, 0755;
    my $sticky = "$dir/sticky";    # as /tmp: root's, anyone may create
    mkdir $sticky;
    chmod 01777, $sticky;
    my ($pid_file, $sock, $log) = ("$rootdir/fcgi-spawn.pid", "$sticky/fcgi.sock", "$rootdir/fcgi-spawn.log");
    my $access = "$rootdir/access.log";
    my $srv = start_server(name => 'fcgi-spawn', log => "$dir/user.stderr",
        argv => [ $bin, 'run', '--listen', $sock, '--workers', 1, '--root', scripts_dir(),
                  '--user', 'nobody', '--pid-file', $pid_file, '--log', $log, '--access-log', $access ],
        ready => sub { slurp($log) =~ /ready:/ && -S $sock });
    is slurp($pid_file), "$srv->{pid}\n", 'the pid file is written in a root-owned directory';
    is((stat $sock)[4], scalar(getpwnam 'nobody'), 'the socket file is the user\'s');
    my $client = bless { dir => $dir, listen => $sock, stopped => 1 }, 'FcgiSpawn::Test::Daemon';
    my ($out, $err, $rc) = fcgi_request($client, 'hello.pl', timeout => 10);
    is $rc, 0, 'it serves' or diag $err;
    kill 'USR1', $srv->{pid};
    ok wait_for(sub { slurp($log) =~ /SIGUSR1: log reopened/ }, 5),
        'USR1 reopens the log file as the user (the master gave it the file)';
    unlike slurp($log), qr/cannot open log file/, 'without an error';
    is((stat $access)[4], scalar(getpwnam 'nobody'), 'the access log file is the user\'s too');
    ($out, $err, $rc) = fcgi_request($client, 'hello.pl', timeout => 10);
    is $rc, 0, 'it serves after USR1' or diag $err;
    ok wait_for(sub { (() = slurp($access) =~ /hello\.pl/g) == 2 }, 5),
        'and the access log, reopened by the worker as the user, has both requests';
    unlike slurp($log), qr/access log/i, 'without an error about it';
    is stop_server($srv, 'TERM'), 0, 'TERM: exit 0';
    ok !-e $sock, 'the socket in a sticky directory is removed by the user';
    ok -e $pid_file && -z $pid_file, 'the pid file it may not remove is emptied';
    like slurp($log), qr/cannot remove pid file .*emptied it/, 'and the log says so';
};

# /run/fcgi-spawn made by root, as a recipe without `install -d -o` would:
# the daemon, as --user, cannot remove its socket there at the stop. It
# says so once, with why and what to do, and `config` warns beforehand.
subtest 'a socket directory the user cannot write to' => sub {
    plan skip_all => 'needs root to switch users' if $> != 0;
    my $rundir = "$dir/root-run";
    mkdir $rundir, 0755;
    my $sock = "$rundir/fcgi.sock";
    my $layout = qr/listen = \Q$sock\E: its directory \Q$rundir\E is not writable by nobody, whom the daemon runs as: a stop cannot remove the socket file \(the next start replaces it\); give the directory to nobody \(install -d -o nobody \Q$rundir\E\)/;
    my ($rc, $out) = run_cmd($bin, 'config', '--listen', $sock, '--user', 'nobody', '--root', scripts_dir());
    is $rc, 0, 'config: the configuration is valid';
    like $out, $layout, 'config warns about the layout';
    my $log = "$dir/root-run.log";
    my $srv = start_server(name => 'fcgi-spawn', log => "$dir/root-run.stderr",
        argv => [ $bin, 'run', '--listen', $sock, '--workers', 1, '--root', scripts_dir(),
                  '--user', 'nobody', '--log', $log ],
        ready => sub { slurp($log) =~ /ready:/ && -S $sock });
    like slurp($log), $layout, 'so does the start, in the log';
    is stop_server($srv, 'TERM'), 0, 'TERM: exit 0';
    my @said = grep { /cannot remove socket file/ } split /\n/, slurp($log);
    is scalar @said, 1, 'the stop logs the socket file it cannot remove once' or diag join "\n", @said;
    like $said[0] // '', qr/cannot remove socket file \Q$sock\E \(Permission denied \(os error 13\)\): its directory \Q$rundir\E is not writable by nobody, whom the daemon runs as; the next start replaces the file/,
        'saying why';
    unlink $sock;
    chown scalar(getpwnam 'nobody'), -1, $rundir;
    ($rc, $out) = run_cmd($bin, 'config', '--listen', $sock, '--user', 'nobody', '--root', scripts_dir());
    unlike $out, qr/not writable/, 'the directory given to the user: no warning';
};

subtest 'config checks what run would refuse' => sub {
    my @cases = (
        [ 'a missing preload module', [ '--preload', 'No::Such::Module' ], qr/--preload No::Such::Module: Can't locate No\/Such\/Module\.pm/ ],
        [ 'a missing preload script', [ '--preload-script', "$dir/nope.pl" ], qr/preload_script: \Q$dir\E\/nope\.pl: No such file/ ],
        [ 'an unknown user', [ '--user', 'no-such-user-xyz' ], qr/user: no-such-user-xyz: no such user/ ],
        [ 'an unknown group', [ '--user', 'nobody', '--group', 'no-such-group-xyz' ], qr/group: no-such-group-xyz: no such group/ ],
        [ 'a missing socket directory', [ '--listen', "$dir/no-dir/s.sock" ], qr/listen: \Q$dir\E\/no-dir\/s\.sock: directory \Q$dir\E\/no-dir does not exist/ ],
        [ 'a root that does not exist', [ '--root', "$dir/no-root" ], qr/root: \Q$dir\E\/no-root: No such file or directory \(os error 2\)/ ],
    );
    for my $case (@cases) {
        my ($what, $flags, $message) = @$case;
        my ($rc, $out) = run_cmd($bin, 'config', @$flags);
        is $rc, 2, "$what: exit 2";
        like $out, $message, "$what: named";
        unlike $out, qr/configuration OK/, "$what: not OK";
    }
    my ($rc, $out) = run_cmd($bin, 'config', '--preload', 'CGI', '--root', scripts_dir());
    is $rc, 0, 'a good configuration: exit 0';
    like $out, qr/^configuration OK$/m, 'and says so';
};

subtest 'messages' => sub {
    my ($rc, $out) = run_cmd($bin, 'run', '--config', "$dir/missing.toml");
    is $rc, 2, 'a missing config file: exit 2';
    like $out, qr/^\S+ fcgi-spawn\[\d+\]: error: cannot read config file \Q$dir\E\/missing\.toml: No such file or directory \(os error 2\)$/m,
        'in the format of a log line, the OS error once';
    ($rc, $out) = run_cmd($bin, 'run', '--listen', "$dir/no-dir/x.sock");
    is(() = $out =~ /os error/g, 0, 'a missing socket directory: no raw OS error twice');
    like $out, qr/directory \Q$dir\E\/no-dir does not exist/, 'but what is missing';
    ($rc, $out) = run_cmd($bin, 'run', '--workers', -3);
    is $rc, 2, '--workers -3: exit 2';
    like $out, qr/invalid value '-3' for '--workers <N>'/, 'says the value is invalid for --workers';
    spew("$dir/broken.toml", "workers = 2\nroot = [\n");
    ($rc, $out) = run_cmd($bin, 'config', '--config', "$dir/broken.toml");
    is $rc, 2, 'a TOML syntax error: exit 2';
    like $out, qr/line 2.*\n.*\|\n2 \| root = \[\n\s*\|\s+\^/, 'keeps its lines and its caret';
    spew("$dir/one-root.toml", sprintf qq{root = "%s"\n}, scripts_dir());
    ($rc, $out) = run_cmd($bin, 'config', '--print', '--config', "$dir/one-root.toml");
    is $rc, 0, 'root = "DIR" (a string) is accepted';
    like $out, qr/^root = \["\Q${\ scripts_dir()}\E"\]$/m, 'as one root';
};

subtest '--help and --version' => sub {
    my ($rc, $out) = run_cmd($bin, '--help');
    like $out, qr/Signals.*\n(?:.*\n)*.*TERM.*\n(?:.*\n)*.*USR1/, '--help lists the signals';
    ($rc, $out) = run_cmd($bin, 'run', '--help');
    like $out, qr/--workers <N>\s+Number of worker processes \(static pool\); 0: no fork/, 'run --help documents --workers 0';
    like $out, qr/--user <USER>\s+Run as this user: the master/, 'and that the master switches with --user';
    like $out, qr/Signals.*\n(?:.*\n)*.*QUIT/, 'and lists the signals';
    ($rc, $out) = run_cmd($bin, '--version');
    is $rc, 0, '--version: exit 0';
    # The commit the binary was built from (HEAD may have moved since).
    like $out, qr/^fcgi-spawn \S+ \(commit (?:[0-9a-f]{7,}|unknown)\)$/m, 'names a commit';
    like $out, qr/^libperl: (\S+) \(built against perl 5\.\d+\.\d+\)$/m, 'the libperl';
    my ($lib) = $out =~ /^libperl: (\S+)/m;
    ok -e $lib, "which exists ($lib)";
    my $perl_v = `perl -e 'printf "%vd", \$^V'`;
    like $out, qr/^perl: \Q$perl_v\E$/m, "perl's version";
    my ($inc) = `perl -e 'print \$INC[-1]'`;
    like $out, qr/^\@INC:\n(?:  .*\n)*  \Q$inc\E$/m, 'and @INC';
};

subtest 'request: exit codes and why a 403' => sub {
    my $www = "$dir/www";
    mkdir $www;
    mkdir "$www/lib";
    spew("$www/index.pl", qq{print "Content-Type: text/plain\\r\\n\\r\\nindex\\n";\n});
    spew("$www/lib/Util.pl", qq{print "Content-Type: text/plain\\r\\n\\r\\nlibrary\\n";\n});
    spew("$www/die.pl", qq{die "on purpose\\n";\n});
    spew("$www/notes.txt", "text\n");
    my $d = start_daemon(workers => 1, root => $www, args => [ '--deny', "$www/**/lib/**", '--deny', "$www/lib/*" ]);
    my ($out, $err, $rc) = fcgi_request($d, "$www/index.pl");
    is $rc, 0, '200: exit 0';
    ($out, $err, $rc) = fcgi_request($d, "$www/die.pl");
    is $rc, 5, '500: exit 5';
    like $err, qr/status 500/, 'said on stderr';
    ($out, $err, $rc) = fcgi_request($d, "$www/missing.pl");
    is $rc, 4, '404: exit 4';
    like $err, qr/no such script/, 'said on stderr';
    ($out, $err, $rc) = fcgi_request($d, "$www/notes.txt");
    is $rc, 4, '403 (extension): exit 4';
    like $err, qr/status 403\): forbidden: .*notes\.txt does not have an allowed extension/, 'and why';
    my $said = qx{$bin request --connect ${\ $d->socket} relative/index.pl 2>&1 >/dev/null};
    is $? >> 8, 4, '403 (relative SCRIPT_FILENAME): exit 4';
    like $said, qr/not an absolute path/, 'and why';
    ($out, $err, $rc) = fcgi_request($d, script_path('hello.pl'));
    is $rc, 4, '403 (outside the root): exit 4';
    like $err, qr/outside the daemon's roots/, 'a guess without the settings';
    my @argv = ($bin, 'request', '--connect', $d->socket, '--root', $www, script_path('hello.pl'));
    $said = qx{@argv 2>&1 >/dev/null};
    is $? >> 8, 4, 'with --root: exit 4';
    like $said, qr/is outside the allowed roots \(\Q$www\E\)/, 'and the reason';

    ($out, $err, $rc) = fcgi_request($d, "$www/lib/Util.pl");
    is $rc, 4, 'a library .pl under the root matching deny: 403';
    unlike $out, qr/library/, 'not run';
    ok wait_for(sub { $d->log_text =~ /lib\/Util\.pl matches deny = / }, 5), 'a log line names the glob';
    $d->stop;
};

# The Quick start's tmpfiles.d line, as written, makes /run/fcgi-spawn the
# user's (systemd-tmpfiles, in a root of its own).
subtest "the Quick start's tmpfiles.d line" => sub {
    my $tmpfiles = (grep { -x } '/usr/bin/systemd-tmpfiles', '/bin/systemd-tmpfiles')[0]
        or plan skip_all => 'systemd-tmpfiles not installed';
    plan skip_all => 'needs root to give a directory to www-data' if $> != 0;
    my ($line, $file) = slurp("$FindBin::Bin/../README.md") =~ m{^    echo '(d /run/fcgi-spawn [^']*)' > (/etc/tmpfiles\.d/\S+)$}m;
    ok $line, 'the Quick start has one' or return;
    my $root = "$dir/tmpfiles-root";
    mkdir $_ for $root, "$root/etc", "$root/etc/tmpfiles.d", "$root/run";
    system('cp', '/etc/passwd', '/etc/group', "$root/etc/") == 0 or die 'cp passwd';
    spew("$root$file", "$line\n");
    my $out = `$tmpfiles --root=$root --create 2>&1`;
    is $?, 0, 'systemd-tmpfiles takes it' or diag $out;
    my @st = stat "$root/run/fcgi-spawn";
    ok @st && -d _, 'it makes /run/fcgi-spawn';
    is $st[4], scalar(getpwnam 'www-data'), 'www-data\'s, as the daemon needs it';
};

subtest "the README's package list is script/install-deps's" => sub {
    my $top = "$FindBin::Bin/..";
    my ($need) = slurp("$top/script/install-deps") =~ /^need=\((.*?)^\)/ms;
    $need =~ s/#.*$//mg;
    my %deps = map { $_ => 1 } split ' ', $need;
    my ($block) = slurp("$top/README.md") =~ /^### What they install\n.*?\n\n((?: {4}\S[^\n]*\n)+)/ms;
    ok $block, 'the README lists packages';
    my %readme = map { $_ => 1 } split ' ', $block // '';
    is_deeply [ sort keys %readme ], [ sort keys %deps ], 'the same packages';
};

# The README's first command, twice: one from a copy of the checkout in a
# 0700 home (as root's is), one from the checkout itself.
subtest 'script/demo twice, on two ports' => sub {
    my $nginx = (grep { -x } '/usr/sbin/nginx', '/usr/bin/nginx')[0]
        or plan skip_all => 'nginx not installed (script/install-deps installs it)';
    my $top = "$FindBin::Bin/..";
    my $home = "$dir/home";
    mkdir $home, 0700;
    mkdir "$home/checkout";
    mkdir "$home/checkout/script";
    system('cp', "$top/script/demo", "$home/checkout/script/demo") == 0 or die 'cp demo';
    system('cp', '-r', "$top/examples", "$home/checkout/examples") == 0 or die 'cp examples';
    local $ENV{FCGI_SPAWN_BIN} = $bin;
    # What the demo must not hand to its scripts.
    local $ENV{PATH} = "/root/.cargo/bin:$ENV{PATH}";
    my (@demos, @run);
    # TERM, never the harness's KILL: a demo stops its own daemon and nginx.
    eval {
        for my $n (1, 2) {
            my $port = free_port();
            local $ENV{PORT} = $port;
            my $demo = $n == 1 ? "$home/checkout/script/demo" : "$top/script/demo";
            push @demos, start_server(name => "demo $n", port => $port, log => "$dir/demo$n.out",
                argv => [ 'bash', $demo ], ready => sub { slurp("$dir/demo$n.out") =~ /demo: open/ });
        }
        @run = map { slurp("$dir/demo$_.out") =~ /^demo: runtime directory (\S+)$/m ? $1 : '' } 1, 2;
        ok $run[0] && $run[1] && $run[0] ne $run[1], 'each demo has its own runtime directory';
        like slurp("$dir/demo1.out"), qr/^demo: pid $demos[0]{pid} \(kill -TERM $demos[0]{pid} stops it all\)/m,
            'the demo prints its own pid, which the README says to TERM';
        my $conf = slurp("$run[0]/nginx.conf");
        unlike $conf, qr/fastcgi_keep_conn on|keepalive \d/, 'its nginx follows the recipe: no kept connections';
        my $page = sub { HTTP::Tiny->new(timeout => 10)->get($_[0]{url}->($_[1] // '/index.cgi'))->{content} // '' };
        like($page->($_), qr/fcgi-spawn/i, "$_->{name} serves on its port") for @demos;
        like $page->($demos[0]), qr/fcgi-spawn examples/, 'also from a checkout in a 0700 home';
        my $env = $page->($demos[0], '/env.pl');
        like $env, qr{<th align="left">PATH</th><td>/usr/local/bin:/usr/bin:/bin</td>}, 'its scripts get a plain PATH';
        SKIP: {
            skip 'started as root only: the scripts run as an unprivileged user', 3 if $> != 0;
            my $user = getpwnam('www-data') ? 'www-data' : 'nobody';
            like $env, qr/user \Q$user\E,/, "they run as $user";
            my ($daemon) = slurp("$dir/demo1.out") =~ /fcgi-spawn pid (\d+)/;
            my @workers = worker_pids($daemon);
            my @uids = map { (slurp("/proc/$_/status") =~ /^Uid:\s+(\d+)/m)[0] } @workers;
            is_deeply \@uids, [ (scalar getpwnam $user) x 2 ], "so do both workers";
            like slurp("$dir/demo1.out"), qr/^demo: scripts run as \Q$user\E, from \Q$run[0]\E\/www \(a copy of examples\/:/m,
                'and the demo says so';
        }
        stop_server($demos[0], 'TERM');
        ok !-S "$run[0]/socket/fcgi-spawn.sock", 'the stopped demo\'s socket is gone';
        unlike slurp("$run[0]/logs/fcgi-spawn.log"), qr/warning/, 'nothing to warn about in its log';
        ok -S "$run[1]/socket/fcgi-spawn.sock", 'the other one\'s is there';
        like($page->($demos[1]), qr/fcgi-spawn/i, 'and the other demo still serves');
        stop_server($demos[1], 'TERM');
        1;
    } or fail("demo test died: $@");
    stop_server($_, 'TERM') for @demos;
    system 'rm', '-rf', grep { length } @run;
};

done_testing;
