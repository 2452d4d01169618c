# Moving from FCGI::Spawn: the binary called as `fcgi_spawn` (a symlink)
# with fcgi_spawn's own flags reads a real fcgi_spawn.conf and the preload
# scripts of its config directory, and serves over FastCGI: n_processes
# workers, recycled after max_requests, the socket with sock_chmod's mode,
# preload_nonprepared_NN.pl run in the master in NN order,
# preload_prepared_NN.pl in each worker, `stats` reloading a preloaded
# module changed on disk, and one info line for each key that is always so.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

my $dir = tempdir('fcgi-spawn-migration-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/$_", 0755 for qw(etc lib www run bin);
my @as_user;
if ($> == 0) {
    my @nobody = getpwnam 'nobody' or BAIL_OUT('no user "nobody" on this machine');
    my $group = getgrgid($nobody[3]);
    chown $nobody[2], $nobody[3], "$dir/run";
    @as_user = ('-u', 'nobody', '-g', $group);
}

spew("$dir/etc/fcgi_spawn.conf", <<'CONF');
# as FCGI::Spawn reads it: key, whitespace, value(s)
  n_processes   3
  max_requests  2
  sock_chmod    0600
  clean_inc_hash  2
  clean_main_space  1
  save_env  1
  stats  1
  stats_policy  mtime
CONF
spew("$dir/lib/StatMod.pm", "package StatMod;\nuse strict;\nuse warnings;\nsub version { 'one' }\n1;\n");
spew("$dir/etc/preload_nonprepared_01.pl", <<"PL");
use lib '$dir/lib';
require StatMod;
\$main::NONPREPARED = "nonprepared in \$\$";
\$main::ORDER = '01';
PL
spew("$dir/etc/preload_nonprepared_02.pl", "\$main::ORDER .= ',02';\n");
spew("$dir/etc/preload_prepared_01.pl", "\$main::PREPARED = \"prepared in \$\$\";\n");
spew("$dir/www/info.pl", <<'PL');
use strict;
use warnings;
print "Content-Type: text/plain\r\n\r\n";
no warnings 'once';
print "pid=$$\n$main::NONPREPARED\n$main::PREPARED\norder=$main::ORDER\nversion=", StatMod::version(), "\n";
PL
symlink bin_path(), "$dir/bin/fcgi_spawn" or die "symlink: $!";

my ($sock, $pidfile, $log) = ("$dir/run/fcgi.sock", "$dir/run/fcgi_spawn.pid", "$dir/fcgi_spawn.log");
my $srv = start_server(name => 'fcgi_spawn', log => "$dir/stderr.txt",
    argv => [ "$dir/bin/fcgi_spawn", '-c', "$dir/etc", '-p', $pidfile, '-l', $log, '-s', $sock,
              @as_user, '-e', '-pl', '-nd', '--', '--root', "$dir/www" ],
    ready => sub { slurp($log) =~ /ready:/ && -S $sock });
my $client = bless { dir => $dir, listen => $sock, stopped => 1 }, 'FcgiSpawn::Test::Daemon';

is slurp($pidfile), "$srv->{pid}\n", '-p: the pid file names the master';
is sprintf('%04o', (stat $sock)[2] & 07777), '0600', 'sock_chmod 0600: the socket mode';
ok wait_for(sub { worker_pids($srv->{pid}) == 3 }, 5), 'n_processes 3: three workers'
    or diag 'workers: ' . join ' ', worker_pids($srv->{pid});
my $text = slurp($log);
like $text, qr/info: \Q$_\E/, "an info line: $_" for
    'clean_inc_hash 2: fcgi-spawn always cleans', 'clean_main_space 1: ', 'save_env 1: ', '-e: exit() always ends only the script';
like $text, qr/running as user nobody/, '-u: the daemon runs as the user' if @as_user;

sub info {
    my ($out, $err, $rc) = fcgi_request($client, "$dir/www/info.pl", timeout => 10);
    is $rc, 0, 'request answered' or diag $err, slurp($log);
    return $out;
}

my $out = info();
my ($pid) = $out =~ /^pid=(\d+)$/m;
like $out, qr/^nonprepared in $srv->{pid}$/m, 'preload_nonprepared_01.pl ran in the master';
like $out, qr/^prepared in $pid$/m, 'preload_prepared_01.pl ran in the worker that answered';
like $out, qr/^order=01,02$/m, 'the nonprepared scripts ran in NN order';
like $out, qr/^version=one$/m, 'the preloaded module answers';

my %pids = ($pid => 1);
for (1 .. 11) {
    my ($p) = info() =~ /^pid=(\d+)$/m;
    $pids{$p}++ if $p;
}
cmp_ok scalar(keys %pids), '>', 3, 'max_requests 2: workers are replaced (' . scalar(keys %pids) . ' pids for 12 requests)';
ok !grep({ $_ > 2 } values %pids), 'none served more than 2 requests';
like slurp($log), qr/worker recycled after 2 requests/, 'the log says why';

spew("$dir/lib/StatMod.pm", "package StatMod;\nuse strict;\nuse warnings;\nsub version { 'two' }\n1;\n");
utime time + 5, time + 5, "$dir/lib/StatMod.pm";
like info(), qr/^version=two$/m, 'stats 1: the changed module is reloaded for the next request';
like slurp($log), qr/stats: reloaded StatMod\.pm \(\Q$dir\E\/lib\/StatMod\.pm changed\)/, 'with a log line';
like info(), qr/^version=two$/m, 'and stays so';

# HUP reads fcgi_spawn.conf again, as FCGI::Spawn's did.
(my $conf = slurp("$dir/etc/fcgi_spawn.conf")) =~ s/n_processes\s+3/n_processes 2/;
spew("$dir/etc/fcgi_spawn.conf", $conf);
kill 'HUP', $srv->{pid};
ok wait_for(sub { slurp($log) =~ /reloaded: generation 2 serving \(2 workers/ }, 15),
    'HUP: fcgi_spawn.conf is read again (n_processes 2)'
    or diag slurp($log);
ok wait_for(sub { worker_pids($srv->{pid}) == 2 }, 10), 'two workers serve after the reload'
    or diag 'workers: ' . join ' ', worker_pids($srv->{pid});
like info(), qr/^version=two$/m, 'and serve';

is stop_server($srv, 'TERM'), 0, 'TERM: exit 0';
ok !-e $sock, 'the socket is removed';
ok !-e $pidfile, 'the pid file is removed';

my $bad = "$dir/bad";
mkdir $bad;
spew("$bad/fcgi_spawn.conf", "n_processes 2\nchroot_path /var/www\n");
my $said = qx{$dir/bin/fcgi_spawn -c $bad -s $dir/bad.sock -nd 2>&1};
is $? >> 8, 2, 'an unknown fcgi_spawn.conf key: exit 2';
like $said, qr/\Q$bad\E\/fcgi_spawn\.conf: line 2: chroot_path: unknown key/, 'naming file, line and key';
ok !-e "$dir/bad.sock", 'no socket made';

done_testing;
