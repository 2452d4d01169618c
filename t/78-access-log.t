# access_log: one line per request, in the documented format (README,
# "Status and health checks"), with the status the client got (200, 302,
# 404, 500), the response's bytes, its duration, the worker's RSS after it
# and the CPU it took (a fork-isolation request's child included); the
# file is reopened on USR1 after logrotate moved it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp ();
use Test::More;
use FcgiSpawn::Test;

my $log;
my $d = start_daemon(workers => 2, args => [
    '--access-log', ($log = File::Temp::tempdir(CLEANUP => 1) . '/access.log'),
    '--isolation-for', scripts_dir() . '/cpu-loop.pl=fork',
    '--ping-path', '/fcgi-ping',
]);

my $line = qr{^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\d+) "(\S+) (\S*)" (\d{3}) (\d+) (\d+\.\d{3}) (\d+) (\d+\.\d{3})$};
sub entries {
    my @lines = split /\n/, slurp($log);
    my @bad = grep { !/$line/ } @lines;
    is_deeply \@bad, [], 'every line has the documented fields';
    return map { [ /$line/ ] } @lines;
}

my @requests = (
    [ 'hello.pl',    'name=x', 200 ],
    [ 'redirect.pl', '',       302 ],
    [ 'missing.pl',  '',       404 ],
    [ 'die.pl',      '',       500 ],
    [ 'sleep.pl',    '0.3',    200 ],
    [ 'cpu-loop.pl', '1',      200 ],
);
my %bytes;
for my $r (@requests) {
    my ($out) = fcgi_request($d, $r->[0], query => $r->[1]);
    is parse_cgi($out)->{status}, $r->[2], "$r->[0]: $r->[2]";
    $bytes{ $r->[0] } = length $out;
}
fcgi_request($d, '/fcgi-ping', params => { SCRIPT_NAME => '/fcgi-ping' });
my @e;
ok wait_for(sub { (@e = split /\n/, slurp($log)) == @requests + 1 }, 5),
    'one line per request' or diag slurp($log);
@e = entries();
for my $i (0 .. $#requests) {
    my ($time, $pid, $method, $uri, $status, $bytes, $ms, $rss, $cpu) = @{ $e[$i] };
    my ($script, $query, $want) = @{ $requests[$i] };
    my $want_uri = "/$script" . (length $query ? "?$query" : '');
    is "$method $uri", "GET $want_uri", "line $i: method and URI";
    is $status, $want, "line $i: status $want";
    is $bytes, $bytes{$script}, "line $i: bytes sent ($bytes)";
    ok((grep { $_ == $pid } worker_pids($d)) || $script eq 'die.pl', "line $i: a worker's pid");
    ok $rss > 1000, "line $i: RSS after the request ($rss kB)";
}
ok $e[4][6] >= 300, "sleep.pl?0.3 took $e[4][6] ms";
ok $e[4][8] < 100, "sleeping used little CPU ($e[4][8] ms)";
ok $e[5][8] >= 250, "cpu-loop.pl?1 (1 s on a busy CPU) in a forked child: its CPU counted ($e[5][8] ms)";
is $e[6][3], '/fcgi-ping', 'the ping request is logged too';

# logrotate: move the file, USR1 the master; the next lines go to a new one.
rename $log, "$log.1" or die $!;
kill 'USR1', $d->pid;
ok wait_for(sub { $d->log_text =~ /SIGUSR1: log reopened/ }, 5), 'the master saw USR1';
fcgi_request($d, 'hello.pl') for 1 .. 4;    # both workers, whichever serves
ok wait_for(sub { -e $log && (() = slurp($log) =~ /\n/g) == 4 }, 5), 'new lines go to a new file';
is scalar(() = slurp("$log.1") =~ /\n/g), @requests + 1, 'nothing more in the moved file';
my @holders = grep {
    my $pid = $_;
    grep { (readlink($_) // '') eq "$log.1" } glob "/proc/$pid/fd/*";
} $d->pid, map { $_->[1] } entries();
is_deeply \@holders, [], 'neither the master nor a worker that wrote since holds the moved file';
$d->stop;

done_testing;
