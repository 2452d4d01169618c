# The master never leaves orphans: killed with SIGKILL while one worker
# spins in a CPU loop, one sleeps in a script and one is idle, every worker
# is gone within 2 s.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $started = sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /start/ };
for my $round (1 .. 2) {
    my $d = start_daemon(workers => 3);
    my @workers = worker_pids($d);
    is scalar(@workers), 3, "round $round: three workers";
    my @socks;
    for my $script ('cpu-loop.pl', 'sleep-timed.pl') {
        my $s = raw_connect($d);
        print {$s} fcgi_request_bytes(1, $script, query => '30');
        my (undef, $why) = read_records($s, until => $started, timeout => 10);
        is $why, 'done', "round $round: $script running";
        push @socks, $s;
    }
    my $t0 = time;
    kill 'KILL', $d->pid;
    my $gone = wait_for(sub { !grep { running($_) } @workers }, 5);
    my $took = time - $t0;
    $d->wait_exit(5);
    ok $gone, "round $round: every worker gone after the master's SIGKILL";
    cmp_ok $took, '<', 2, "round $round: within 2 s (took ${\ sprintf '%.2f', $took} s)";
    for my $s (@socks) {
        my ($recs, $why) = read_records($s, timeout => 5);
        is $why, 'eof', "round $round: the client sees its connection closed";
    }
    kill 'KILL', grep { running($_) } @workers;
}
done_testing;
