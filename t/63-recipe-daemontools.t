# The shipped daemontools service directory (contrib/daemontools/fcgi-spawn,
# with contrib/fcgi-spawn.toml) under the real svscan, supervise and
# multilog: up, svc -h (HUP: a reload, no request fails), svc -t (restart: a new master that serves),
# svc -d (graceful stop: the request in flight finishes, no process and no
# socket left), svc -u; log lines reach multilog with its stamp and no
# second one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use POSIX ();
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

plan skip_all => 'needs root: the run script gives the runtime directory to www-data' if $> != 0;
for my $prog (qw(svscan supervise svc svstat multilog)) {
    grep { -x "$_/$prog" } split /:/, $ENV{PATH}
        or BAIL_OUT("$prog not found: script/install-deps installs daemontools");
}

my $dir = tempdir('fcgi-spawn-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my ($svc, $sock, $multilog) = install_service_dir($dir);
local $ENV{PATH} = bin_dir($dir) . ":$ENV{PATH}";

# A handle for fcgi_request on the socket the service listens on.
my $client = bless { dir => $dir, listen => $sock, stopped => 1 }, 'FcgiSpawn::Test::Daemon';

sub svstat {
    my ($what) = @_;
    my $out = `svstat $what 2>&1`;
    return $out =~ /: up \(pid (\d+)\)/ ? ($1, $out) : (0, $out);
}

sub master_pid { (svstat($svc))[0] }

sub serves {
    my ($out, $err, $rc) = fcgi_request($client, 'pid.pl', timeout => 10);
    return $rc == 0 && $out =~ /^(\d+)$/m ? $1 : 0;
}

sub log_text { slurp($multilog) }

# Up: svscan starts supervise for the service and for its log, with a pipe
# between them.
my $svscan = start_server(name => 'svscan', argv => ['svscan', "$dir/service"],
    log => "$dir/svscan.log", ready => sub { master_pid() && -S $sock && serves() });
my $m1 = master_pid();
ok $m1, "up under supervise (master pid $m1)";
my $w = serves();
is((split ' ', (slurp("/proc/$w/stat") =~ s/^.*\)\s+//sr))[1], $m1, 'a worker of that master answers');
my @st = stat "$dir/run";
is $st[4], scalar(getpwnam 'www-data'), 'the run script gave the runtime directory to www-data';
@st = stat $sock;
is sprintf('%04o', $st[2] & 07777), '0660', 'socket mode from the config';
is $st[5], scalar(getgrnam 'www-data'), 'socket group from the config';
my $uid = (stat "/proc/$m1")[4];
is $uid, scalar(getpwnam 'www-data'), 'the master runs as www-data';

ok wait_for(sub { log_text() =~ /ready:/ }, 10), 'multilog receives the log lines';
my @lines = grep { length } split /\n/, log_text();
my @stamped = grep { /^\@[0-9a-f]{24} fcgi-spawn\[\d+\]: \w+: / } @lines;
is scalar(@stamped), scalar(@lines), "every line: multilog's TAI64N stamp, then the daemon's message"
    or diag log_text();
is scalar(grep { /^\@\S+ \d{4}-\d\d-\d\dT\d\d:/ } @lines), 0, 'and no second timestamp (log_format = "plain")';

# svc -h: HUP, a reload: the same master, a new generation of workers, and
# no request fails meanwhile (a client keeps asking while it happens).
my @workers = worker_pids($m1);
my $asking = fork // die "fork: $!";
if (!$asking) {
    my ($asked, $failed) = (0, 0);
    my $until = time + 3;
    while (time < $until) {
        $asked++;
        $failed++ unless serves();
    }
    print "asked $asked failed $failed\n";
    POSIX::_exit($failed ? 1 : 0);
}
sleep 0.5;
system 'svc', '-h', $svc;
waitpid $asking, 0;
is $?, 0, 'svc -h: no request failed during the reload';
ok wait_for(sub { log_text() =~ /reloaded: generation 2 serving/ }, 10), 'svc -h: the master reloaded'
    or diag log_text();
is master_pid(), $m1, 'svc -h: the master stays';
my %old = map { $_ => 1 } @workers;
ok wait_for(sub { my @now = worker_pids($m1); @now && !grep { $old{$_} } @now }, 5),
    'svc -h: a new generation of workers serves';
ok serves(), 'svc -h: serving';

# svc -t: TERM; supervise runs ./run again: a new master that serves.
system 'svc', '-t', $svc;
ok wait_for(sub { my $p = master_pid(); $p && $p != $m1 && -S $sock && serves() }, 20),
    'svc -t: a new master serves';
my $m2 = master_pid();
isnt $m2, $m1, "svc -t: new master pid $m2";
ok wait_for(sub { !running($m1) }, 5), 'svc -t: the old master is gone';
ok !(grep { running($_) } @workers), 'svc -t: and its workers';
like log_text(), qr/fcgi-spawn\[$m1\]: info: .*stop/i, 'the old master logged its stop';

# svc -d during a request: it finishes, then nothing is left.
my @w2 = worker_pids($m2);
my $s = raw_connect($client);
print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '1');
sleep 0.3;
system 'svc', '-d', $svc;
ok wait_for(sub { !-e $sock }, 5), 'svc -d: the socket goes at once: new connections are refused during the drain';
my ($recs, $why) = read_records($s, timeout => 15);
like collect_response($recs, 1)->{stdout}, qr/^done \d+$/m, 'svc -d: the request in flight finishes';
ok wait_for(sub { (svstat($svc))[1] =~ /: down / }, 20), 'svc -d: supervise says down';
ok !running($m2), 'svc -d: the master exited';
ok !(grep { running($_) } @w2), 'svc -d: the workers exited';
ok !-e $sock, 'svc -d: the socket is removed (the runtime directory is the user\'s)';
like log_text(), qr/fcgi-spawn\[$m2\]: info: .*stop/i, 'svc -d: the stop is logged';

# svc -u: up again.
system 'svc', '-u', $svc;
ok wait_for(sub { master_pid() && -S $sock && serves() }, 20), 'svc -u: serving again';
my $m3 = master_pid();
ok $m3 && $m3 != $m2, "svc -u: master pid $m3";

# Stop everything: the service leaves svscan's directory (so svscan starts
# no supervise for it again), svc -dx stops supervise and multilog, svscan
# reaps them and is stopped by pid.
my @tree = descendants($svscan->{pid});
rename $svc, "$dir/stopped" or die "rename: $!";
system 'svc', '-dx', "$dir/stopped", "$dir/stopped/log";
ok wait_for(sub { !grep { running($_) } @tree }, 20), 'svc -dx: supervise, multilog, the daemon and its workers are gone'
    or diag "left: @{[ grep { running($_) } @tree ]}";
# svscan reaps its children at its next scan (every 5 s).
wait_for(sub { !grep { -e "/proc/$_" } @tree }, 7);
stop_server($svscan);
ok !-e $sock, 'no socket left behind';

# The README's unit for svscan where nothing starts it (daemontools beside
# runit on Debian), as written there.
SKIP: {
    my $analyze = (grep { -x } '/usr/bin/systemd-analyze', '/bin/systemd-analyze')[0];
    skip 'systemd-analyze not installed', 3 unless $analyze;
    my ($unit) = slurp("$FindBin::Bin/../README.md")
        =~ m{^    cat > /etc/systemd/system/svscan\.service <<'EOF'\n(.*?)^    EOF\n}ms;
    ok $unit, 'the README has a unit for svscan';
    $unit =~ s/^    //mg;
    spew("$dir/svscan.service", $unit // '');
    my $out = `cd $dir && $analyze verify ./svscan.service 2>&1`;
    is $?, 0, 'systemd-analyze verify accepts it';
    is $out, '', 'and has nothing to say about it (the svscan it names exists)';
}
done_testing;
