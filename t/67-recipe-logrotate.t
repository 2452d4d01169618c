# The shipped logrotate snippet (contrib/logrotate/fcgi-spawn) run by the
# real logrotate against a daemon started as root with the shipped config
# (user www-data) writing a log file in a root-owned directory: twice
# rotated, the master reopens the new file on the postrotate USR1 (as
# www-data: logrotate's `create` gave it the file), the workers' lines
# (a script's STDERR) follow into the new file, nothing is lost, and at
# the stop the pid file and socket in the runtime directory go.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

plan skip_all => 'needs root: the shipped config runs the daemon as www-data' if $> != 0;
my $logrotate = (grep { -x } '/usr/sbin/logrotate', '/usr/bin/logrotate')[0]
    or BAIL_OUT('logrotate not found: script/install-deps installs it');

my $dir = tempdir('fcgi-spawn-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/log", 0755;    # root's, as /var/log/fcgi-spawn
mkdir "$dir/run", 0755;    # www-data's, as the run script makes /run/fcgi-spawn
chown scalar(getpwnam 'www-data'), scalar(getgrnam 'www-data'), "$dir/run";
my ($logfile, $pidfile, $sock) = ("$dir/log/fcgi-spawn.log", "$dir/run/fcgi-spawn.pid", "$dir/run/fcgi.sock");
my $toml = install_recipe('fcgi-spawn.toml', "$dir/fcgi-spawn.toml",
    '/srv/www' => scripts_dir(), 'workers = 4' => 'workers = 2',
    'log_format = "plain"' => qq{log = "$logfile"});
my $conf = install_recipe('logrotate/fcgi-spawn', "$dir/logrotate.conf",
    '/var/log/fcgi-spawn' => "$dir/log", '/run/fcgi-spawn/fcgi-spawn.pid' => $pidfile);

my $srv = start_server(name => 'fcgi-spawn', log => "$dir/stderr.txt",
    argv => [ bin_path(), 'run', '--config', $toml, '--listen', $sock, '--pid-file', $pidfile ],
    ready => sub { slurp($logfile) =~ /ready:/ && -S $sock });
my $client = bless { dir => $dir, listen => $sock, stopped => 1 }, 'FcgiSpawn::Test::Daemon';
is slurp($pidfile), "$srv->{pid}\n", 'the pid file (in the user\'s runtime directory) names the master';
like slurp($logfile), qr/^\d{4}-\d\d-\d\dT\S+ fcgi-spawn\[\d+\]: info: running as user www-data/m,
    'timestamped lines in the log file, the daemon runs as www-data';

sub warn_marker {
    my ($tag) = @_;
    my ($out, $err, $rc) = fcgi_request($client, 'warn.pl', query => $tag, timeout => 10);
    is $rc, 0, "request $tag answered" or diag $err;
}

sub rotate {
    my $out = `$logrotate -f -s $dir/logrotate.state $conf 2>&1`;
    is $?, 0, 'logrotate -f runs the snippet' or diag $out;
}

warn_marker('first');
my @workers = worker_pids($srv->{pid});
rotate();
ok -e "$logfile.1", 'the old log is moved to .1';
like slurp("$logfile.1"), qr/stderr-print-marker/, 'with the lines written so far';
my @st = stat $logfile;
is_deeply [ $st[4], $st[5], sprintf('%04o', $st[2] & 07777) ],
    [ scalar(getpwnam 'www-data'), scalar(getgrnam 'adm'), '0640' ], 'the new log: www-data:adm 0640 (create)';
ok wait_for(sub { slurp($logfile) =~ /SIGUSR1: log reopened/ }, 5), 'postrotate USR1: the master reopened the new file';
my $before = () = slurp($logfile) =~ /stderr-print-marker/g;
warn_marker('second');
ok wait_for(sub { slurp($logfile) =~ /stderr-print-marker/ }, 5),
    "a worker's line (the script's STDERR) lands in the new file";
is_deeply [ worker_pids($srv->{pid}) ], \@workers, 'written by the same workers (no restart needed)';
my $old = slurp("$logfile.1");
is scalar(() = $old =~ /stderr-print-marker/g), 1, 'and not in the rotated one';

# Again: now .1 becomes .2.gz (delaycompress) and the master, as www-data,
# opens the file logrotate created for it.
rotate();
ok -e "$logfile.2.gz", 'second rotation: .2.gz';
ok wait_for(sub { slurp($logfile) =~ /SIGUSR1: log reopened/ }, 5), 'the master reopened again';
warn_marker('third');
ok wait_for(sub { slurp($logfile) =~ /stderr-print-marker/ }, 5), 'the workers follow again';
unlike join('', map { slurp($_) } $logfile, "$logfile.1", "$dir/stderr.txt"), qr/cannot (?:re)?open the log|error/,
    'no error about the log';

is stop_server($srv), 0, 'TERM: exits 0';
ok !-e $pidfile, 'the pid file is removed at the stop';
ok !-e $sock, 'the socket is removed at the stop';
like slurp($logfile), qr/stopping gracefully/, 'the stop is logged in the current file';
done_testing;
