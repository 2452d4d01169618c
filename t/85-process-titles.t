# Process titles, as php-fpm's: `ps` tells the master from the workers,
# and shows what a busy worker runs. /proc/PID/cmdline of master and
# workers, idle and while a script sleeps; a script that sets $0 changes
# neither the title nor the process name (comm), and the next request's
# $0 is its own script again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use POSIX ();
use Test::More;
use FcgiSpawn::Test;

my $dir = tempdir('fcgi-spawn-titles-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $started = "$dir/started";
my $sleeper = spew("$dir/sleeper.pl", <<"PERL");
\$0 = 'a title the script chose';
open my \$fh, '>', '$started' or die \$!;
close \$fh;
sleep 2;
print "Content-Type: text/plain\\r\\n\\r\\nslept\\n";
PERL
my $zero = spew("$dir/zero.pl", qq{print "Content-Type: text/plain\\r\\n\\r\\n\$0\\n";\n});

# The title: the command line up to its first NUL.
sub comm {
    my ($pid) = @_;
    chomp(my $c = slurp("/proc/$pid/comm"));
    return $c;
}

# Sends a request for $script in the background; returns its pid.
sub request_in_background {
    my ($d, $script) = @_;
    unlink $started;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        { exec bin_path(), 'request', '--connect', $d->socket, $script }
        POSIX::_exit(127);
    }
    ok wait_for(sub { -e $started }, 10), 'the script runs';
    return $pid;
}

subtest 'a pool: master and workers' => sub {
    my $d = start_daemon(workers => 2, root => $dir);
    my $master = $d->pid;
    my @workers = worker_pids($d);
    is scalar @workers, 2, 'two workers';
    is process_title($master), 'fcgi-spawn: master (' . $d->socket . ')', 'the master names its socket';
    ok wait_for(sub { !grep { process_title($_) ne 'fcgi-spawn: worker idle' } @workers }, 10),
        'both workers are idle' or diag join ', ', map { process_title($_) } @workers;

    my $client = request_in_background($d, $sleeper);
    my ($busy) = grep { process_title($_) =~ /running/ } @workers;
    ok $busy, 'one worker is busy';
    is process_title($busy // 0), "fcgi-spawn: worker running $sleeper", 'running the script, though it set $0';
    is comm($busy // 0), 'fcgi-spawn', 'its process name is unchanged too (no prctl from $0)';
    my ($other) = grep { $_ != ($busy // 0) } @workers;
    is process_title($other), 'fcgi-spawn: worker idle', 'the other one is idle';
    is process_title($master), 'fcgi-spawn: master (' . $d->socket . ')', 'the master is unchanged';
    waitpid $client, 0;
    is $?, 0, 'the request was answered';
    ok wait_for(sub { process_title($busy // 0) eq 'fcgi-spawn: worker idle' }, 5), 'then idle again';

    # The next request on each worker sees its own script as $0 (the
    # sleeper's was request state, put back).
    for (1 .. 4) {
        my ($out, $err, $rc) = fcgi_request($d, $zero);
        like $out, qr/\r\n\r\n\Q$zero\E\n\z/, '$0 is the script again';
    }
    $d->stop;
};

subtest 'the master names its config file' => sub {
    my $conf = spew("$dir/titles.toml", qq{workers = 1\nroot = ["$dir"]\n});
    my $d = start_daemon(workers => 1, root => $dir, args => [ '--config', $conf ]);
    is process_title($d->pid), "fcgi-spawn: master ($conf)", 'its title';
    $d->stop;
};

subtest '--workers 0: the master serves' => sub {
    my $d = start_daemon(workers => 0, root => $dir);
    my $master = 'fcgi-spawn: master (' . $d->socket . ')';
    is process_title($d->pid), $master, 'idle: the master\'s title';
    my $client = request_in_background($d, $sleeper);
    is process_title($d->pid), "$master running $sleeper", 'then what it runs';
    waitpid $client, 0;
    ok wait_for(sub { process_title($d->pid) eq $master }, 5), 'and back';
    $d->stop;
};

done_testing;
