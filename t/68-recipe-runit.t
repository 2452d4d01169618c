# The shipped service directory (contrib/daemontools/fcgi-spawn, with
# contrib/fcgi-spawn.toml) under runit: the real runsvdir and runsv, driven
# with sv. up, sv hup (a reload: no request fails), sv term (restart: a new
# master serves), sv down (graceful stop: no process and no socket left),
# sv up, then runsvdir's own shutdown (HUP).
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
for my $prog (qw(runsvdir runsv sv multilog)) {
    grep { -x "$_/$prog" } split /:/, $ENV{PATH}
        or BAIL_OUT("$prog not found: script/install-deps installs runit and daemontools");
}

my $dir = tempdir('fcgi-spawn-runit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my ($svc, $sock, $logfile) = install_service_dir($dir);
local $ENV{PATH} = bin_dir($dir) . ":$ENV{PATH}";

my $client = bless { dir => $dir, listen => $sock, stopped => 1 }, 'FcgiSpawn::Test::Daemon';

# sv's view: the service's pid when it runs.
sub master_pid {
    my $out = `sv status $svc 2>&1`;
    return $out =~ /^run: \Q$svc\E: \(pid (\d+)\)/ ? $1 : 0;
}

sub serves {
    my ($out, $err, $rc) = fcgi_request($client, 'pid.pl', timeout => 10);
    return $rc == 0 && $out =~ /^(\d+)$/m ? $1 : 0;
}

sub sv {
    my @args = @_;
    my $out = `sv -w 30 @args $svc 2>&1`;
    return ($? >> 8, $out);
}

my $runsvdir = start_server(name => 'runsvdir', argv => ['runsvdir', "$dir/service"],
    log => "$dir/runsvdir.log", ready => sub { master_pid() && -S $sock && serves() });
my $m1 = master_pid();
ok $m1, "up under runsv (master pid $m1)";
is((stat "/proc/$m1")[4], scalar(getpwnam 'www-data'), 'the master runs as www-data');
ok wait_for(sub { slurp($logfile) =~ /fcgi-spawn\[$m1\]: info: ready:/ }, 10),
    "the log service (./log/run) gets the daemon's lines";

# sv hup: a reload while a client keeps asking.
my @workers = worker_pids($m1);
my $asking = fork // die "fork: $!";
if (!$asking) {
    my $failed = 0;
    my $until = time + 3;
    while (time < $until) { $failed++ unless serves() }
    POSIX::_exit($failed ? 1 : 0);
}
sleep 0.5;
my ($rc, $out) = sv('hup');
is $rc, 0, 'sv hup: exit 0' or diag $out;
waitpid $asking, 0;
is $?, 0, 'sv hup: no request failed during the reload';
ok wait_for(sub { slurp($logfile) =~ /reloaded: generation 2 serving/ }, 10), 'sv hup: the master reloaded';
is master_pid(), $m1, 'sv hup: the same master';
my %old = map { $_ => 1 } @workers;
ok wait_for(sub { my @now = worker_pids($m1); @now && !grep { $old{$_} } @now }, 5),
    'sv hup: a new generation of workers';

# sv term: TERM, and runsv starts ./run again.
($rc, $out) = sv('term');
ok wait_for(sub { my $p = master_pid(); $p && $p != $m1 && -S $sock && serves() }, 20),
    'sv term: a new master serves' or diag $out;
my $m2 = master_pid();
ok wait_for(sub { !running($m1) }, 5), 'sv term: the old master is gone';
ok !(grep { running($_) } @workers), 'sv term: and its workers';

# sv down during a request: it finishes; nothing is left.
my @w2 = worker_pids($m2);
my $s = raw_connect($client);
print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '1');
sleep 0.3;
my $down = fork // die "fork: $!";
POSIX::_exit(system("sv -w 30 down $svc >/dev/null 2>&1") >> 8) if !$down;
my ($recs) = read_records($s, timeout => 15);
like collect_response($recs, 1)->{stdout}, qr/^done \d+$/m, 'sv down: the request in flight finishes';
waitpid $down, 0;
is $? >> 8, 0, 'sv -w down: exit 0 (down within the wait)';
like `sv status $svc 2>&1`, qr/^down: \Q$svc\E:/, 'sv status: down';
ok !running($m2) && !(grep { running($_) } @w2), 'sv down: master and workers exited';
ok !-e $sock, 'sv down: the socket is removed';

($rc, $out) = sv('up');
ok wait_for(sub { master_pid() && -S $sock && serves() }, 20), 'sv up: serving again' or diag $out;

# Shutting the whole tree down as runit's stage 3 does: HUP to runsvdir
# sends TERM to each runsv, which stops the service and its log service
# and leaves. (A lone `sv exit` races with runsvdir, which starts a new
# runsv for a service directory still in its scan directory.)
my @tree = descendants($runsvdir->{pid});
kill 'HUP', $runsvdir->{pid};
ok wait_for(sub { !grep { running($_) } $runsvdir->{pid}, @tree }, 20),
    'runsvdir HUP: runsvdir, runsv, the log service, the daemon and its workers are gone'
    or diag "left: @{[ grep { running($_) } @tree ]}";
stop_server($runsvdir);
ok !-e $sock, 'no socket left behind';
done_testing;
