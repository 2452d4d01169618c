# The command line and the listening socket: bad flags and config keys give
# clear errors naming the flag/key/file, the socket gets its mode from the
# start, a stale socket is replaced and anything else at the path is refused.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use FcgiSpawn::Test;

my $bin = bin_path();
my $dir = tempdir('fcgi-spawn-cli-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub run_cmd {
    my @cmd = @_;
    my $out = qx{@cmd 2>&1};
    return ($? >> 8, $out);
}

my ($rc, $out) = run_cmd($bin, 'run', '--listen', "$dir/x.sock", '--wrokers', 2);
isnt $rc, 0, 'a misspelt flag fails';
like $out, qr/--wrokers/, 'and the message names it';

($rc, $out) = run_cmd($bin, 'run', '--help');
is $rc, 0, 'run --help succeeds';
like $out, qr/--$_\b/, "run --help documents --$_"
    for qw(listen socket-mode socket-owner socket-group workers root ext preload preload-script
           isolation max-requests request-timeout config pid-file log user group);

spew("$dir/bad.toml", "workers = 2\nmax_request = 10\n");
($rc, $out) = run_cmd($bin, 'run', '--config', "$dir/bad.toml");
isnt $rc, 0, 'an unknown config key fails';
like $out, qr/\Q$dir\/bad.toml\E/, 'the message names the file';
like $out, qr/max_request/, 'and the key';
like $out, qr/line 2/, 'and the line';

spew("$dir/good.toml", "workers = 3\npreload = [\"CGI\"]\n");
($rc, $out) = run_cmd($bin, 'config', '--config', "$dir/good.toml");
is $rc, 0, 'config checks a good file';
like $out, qr/good\.toml: configuration OK/, 'and says so';
($rc, $out) = run_cmd($bin, 'config', '--print', '--config', "$dir/good.toml", '--workers', 5);
is $rc, 0, 'config --print succeeds';
like $out, qr/^workers = 5$/m, 'flags override the file';
like $out, qr/^preload = \["CGI"\]$/m, 'file keys are kept';
like $out, qr/^max_requests = 0$/m, 'defaults are filled in';
like $out, qr/^isolation = "perlrun"$/m, 'including the isolation mode';

($rc, $out) = run_cmd($bin, 'run', '--listen', "$dir/y.sock", '--socket-mode', 'rw-rw----');
isnt $rc, 0, 'a bad socket mode fails';
like $out, qr/socket_mode/, 'naming the setting';

# The socket mode is the configured one.
{
    my $d = start_daemon(workers => 1, socket_mode => '0600');
    my $mode = (stat $d->socket)[2] & 07777;
    is sprintf('%04o', $mode), '0600', 'socket created with --socket-mode 0600';
    $d->stop;
    my $d2 = start_daemon(workers => 1);
    is sprintf('%04o', (stat $d2->socket)[2] & 07777), '0660', 'default mode 0660';
    $d2->stop;
}

# A stale socket (nobody listening) is replaced; a regular file is refused.
{
    my $path = "$dir/stale.sock";
    my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 1) or die $!;
    close $l;
    ok -S $path, 'stale socket file left behind';
    my $pid = fork // die;
    if (!$pid) {
        exec $bin, 'run', '--listen', $path, '--workers', 1, '--root', scripts_dir(), '--log', "$dir/stale.log";
        exit 127;
    }
    ok wait_for(sub { -e "$dir/stale.log" && slurp("$dir/stale.log") =~ /ready/ }, 10), 'daemon started over a stale socket';
    like slurp("$dir/stale.log"), qr/replacing stale socket/, 'and said so';
    my $o = qx{$bin request --connect $path ${\ script_path('hello.pl')}};
    like $o, qr/Hello, world!/, 'and serves on it';
    kill 'TERM', $pid;
    waitpid $pid, 0;
    is $?, 0, 'stopped cleanly';

    spew("$dir/plain-file", "precious\n");
    ($rc, $out) = run_cmd($bin, 'run', '--listen', "$dir/plain-file", '--workers', 1);
    isnt $rc, 0, 'a non-socket file at the socket path is refused';
    like $out, qr/not a socket/, 'with a clear message';
    is slurp("$dir/plain-file"), "precious\n", 'and the file is untouched';
}

done_testing;
