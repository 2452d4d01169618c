# The shipped systemd units (contrib/systemd/fcgi-spawn.socket and
# .service, with contrib/fcgi-spawn.toml): `systemd-analyze verify` finds
# nothing to say about them, and the service's ExecStart, run by the real
# systemd-socket-activate on the socket unit's ListenStream as systemd would
# run it, starts on the first connection, serves on the passed socket, logs
# lines without a timestamp of its own (journald adds one), and stops on
# TERM to its main pid (KillMode=mixed) with exit 0, leaving the socket,
# which belongs to the socket unit, in place.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Cwd ();
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

plan skip_all => 'needs root: the shipped config runs the scripts as www-data' if $> != 0;
my ($activate) = grep { -x } map { "$_/systemd-socket-activate" } split(/:/, $ENV{PATH}), '/usr/bin';
BAIL_OUT('systemd-socket-activate not found: script/install-deps installs systemd') unless $activate;

my $dir = tempdir('fcgi-spawn-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $sock = "$dir/run/fcgi.sock";
mkdir "$dir/run";
my $toml = install_recipe('fcgi-spawn.toml', "$dir/fcgi-spawn.toml",
    '/srv/www' => scripts_dir(), 'workers = 4' => 'workers = 2', '/run/fcgi-spawn/fcgi.sock' => $sock);
my @moves = ('/usr/local/bin/fcgi-spawn' => bin_path(), '/etc/fcgi-spawn/fcgi-spawn.toml' => $toml);
my $service = install_recipe('systemd/fcgi-spawn.service', "$dir/fcgi-spawn.service", @moves);
my $socket = install_recipe('systemd/fcgi-spawn.socket', "$dir/fcgi-spawn.socket",
    '/run/fcgi-spawn/fcgi.sock' => $sock);

# Keys of a unit file: "Section.Key" => [values].
sub unit {
    my ($file) = @_;
    my ($section, %keys) = ('');
    for (split /\n/, slurp($file)) {
        next if /^\s*(?:[#;]|$)/;
        if (/^\[(\w+)\]/) { $section = $1; next }
        push @{ $keys{"$section.$1"} }, $2 if /^(\w+)=(.*)$/;
    }
    return \%keys;
}
my $svc = unit($service);
my $skt = unit($socket);

SKIP: {
    my $analyze = (grep { -x } '/usr/bin/systemd-analyze', '/bin/systemd-analyze')[0];
    skip 'systemd-analyze not installed', 2 unless $analyze;
    my $out = `cd $dir && $analyze verify ./fcgi-spawn.socket ./fcgi-spawn.service 2>&1`;
    is $?, 0, 'systemd-analyze verify accepts the units';
    is $out, '', 'and has nothing to say about them (no unknown key, no missing binary)';
}
is_deeply $svc->{'Service.Type'}, ['notify'], 'Type=notify: systemd waits for READY=1';
my ($reload) = @{ $svc->{'Service.ExecReload'} || [] };
is $reload, '/bin/kill -HUP $MAINPID', 'ExecReload sends HUP to the main pid';
is_deeply $svc->{'Service.KillMode'}, ['mixed'], 'KillMode=mixed: TERM to the master, which stops its workers';
is_deeply $svc->{'Unit.Requires'}, ['fcgi-spawn.socket'], 'the service requires the socket unit';
my ($listen) = @{ $skt->{'Socket.ListenStream'} || [] };
is $listen, $sock, 'the socket unit listens on a path';
my ($exec) = @{ $svc->{'Service.ExecStart'} || [] };
like $exec, qr/^\Q@{[ bin_path() ]}\E run /, 'ExecStart runs fcgi-spawn run';
unlike $exec, qr/--listen/, 'without --listen: the socket comes from systemd';

# systemd-socket-activate binds ListenStream, waits for a connection, then
# execs ExecStart with LISTEN_FDS=1 (the same pid, as systemd's main pid),
# in a clean environment: -E passes NOTIFY_SOCKET on, as systemd sets it.
# systemd's notification socket, as the service manager would pass it.
my $notify = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => "$dir/notify") or die "notify socket: $!";
# As systemd's: anyone may send (the daemon runs as www-data by then).
chmod 0777, "$dir/notify";
local $ENV{NOTIFY_SOCKET} = "$dir/notify";
sub notified {
    return '' unless IO::Select->new($notify)->can_read(15);
    $notify->recv(my $msg, 4096);
    return $msg;
}
my $log = "$dir/journal.txt";
my $first;
my $srv = start_server(name => 'systemd-socket-activate', log => $log,
    argv => [ $activate, '-l', $listen, '-E', 'NOTIFY_SOCKET', split ' ', $exec ],
    ready => sub {
        return 0 unless -S $sock;
        $first ||= Test::FCGI::Spawn::connect_to($sock);
        return slurp($log) =~ /ready:/;
    });
my $client = bless { dir => $dir, listen => $sock, stopped => 1 }, 'FcgiSpawn::Test::Daemon';
my $master = $srv->{pid};
is readlink("/proc/$master/exe"), Cwd::abs_path(bin_path()), 'the unit\'s main pid is fcgi-spawn itself';
like slurp("/proc/$master/cmdline"), qr/^fcgi-spawn: master \(\Q$toml\E\)\0/, 'its title names the config file';
like slurp($log), qr/socket systemd passed \(LISTEN_FDS/, 'it takes the socket systemd passed';
like slurp($log), qr/listen = \Q$sock\E not bound: systemd passed the socket to serve on/,
    '... rather than bind the listen of the shared config file (which `status --config` asks)';
my @st = stat $sock;
is $st[5], 0, 'socket owned by root (SocketUser= is systemd\'s job, not the daemon\'s)';
my %pids;
for (1 .. 10) {
    my ($out, $err, $rc) = fcgi_request($client, 'pid.pl', timeout => 10);
    is $rc, 0, 'request answered' or diag $err, slurp($log);
    $pids{$1}++ if $out =~ /^(\d+)$/m;
}
# Which idle worker takes a connection is the kernel's choice: each
# answer from one of the main pid's workers, not every worker.
my %workers = map { $_ => 1 } worker_pids($master);
my @others = grep { !$workers{$_} } keys %pids;
ok %pids && !@others, 'answered by the workers of the main pid'
    or diag "answered by @{[ keys %pids ]}; workers: @{[ keys %workers ]}";
# The README's status command, with the shipped config as it is.
my $status = `@{[ bin_path() ]} status --config $toml --brief 2>&1`;
is $?, 0, 'fcgi-spawn status --config (the shipped file) finds the socket' or diag $status;
like $status, qr/^pool:/m, '... and prints the pool';
is((stat "/proc/$master")[4], scalar(getpwnam 'www-data'), 'the main pid runs as www-data');
# The daemon's lines: those after systemd-socket-activate's "Execing ...".
my @lines = grep { length } split /\n/, (split /^Execing .*\n/m, slurp($log), 2)[1] // '';
ok @lines >= 3, 'the daemon logs on stderr';
is scalar(grep { /^fcgi-spawn\[\d+\]: (?:info|warning|error|debug): / } @lines), scalar(@lines),
    'every line is plain "fcgi-spawn[PID]: LEVEL: message" (journald adds the time)' or diag slurp($log);

like notified(), qr/\AREADY=1\nSTATUS=2 workers serving/, 'READY=1 to NOTIFY_SOCKET once the workers serve';

# systemctl reload: ExecReload as systemd runs it.
(my $reload_cmd = $reload) =~ s/\$MAINPID/$master/;
my @before = worker_pids($master);
system split ' ', $reload_cmd;
like notified(), qr/\ARELOADING=1\nMONOTONIC_USEC=\d+/, 'ExecReload: RELOADING=1';
like notified(), qr/\AREADY=1\nSTATUS=2 workers serving, generation 2/, 'then READY=1, generation 2';
my %old = map { $_ => 1 } @before;
ok wait_for(sub { my @now = worker_pids($master); @now == 2 && !grep { $old{$_} } @now }, 10),
    'a new generation of workers serves';
my ($out, $err, $rc) = fcgi_request($client, 'pid.pl', timeout => 10);
ok $rc == 0 && $out =~ /^(\d+)$/m && !$old{$1}, 'and answers' or diag $err;

# A request in flight when systemd stops the service (TERM to the main pid).
my @workers = worker_pids($master);
my $s = raw_connect($client);
print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '1');
sleep 0.3;
is stop_server($srv, 'TERM'), 0, 'TERM: the main pid exits 0';
like notified(), qr/\ASTOPPING=1/, 'STOPPING=1 when the stop began';
my ($recs) = read_records($s, timeout => 10);
like collect_response($recs, 1)->{stdout}, qr/^done \d+$/m, 'the request in flight finished';
ok !(grep { running($_) } @workers), 'no worker left';
ok -S $sock, 'the socket stays: it belongs to the socket unit';
close $first if $first;
done_testing;
