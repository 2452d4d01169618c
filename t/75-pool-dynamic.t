# pool = "dynamic" (php-fpm's pm = dynamic): the pool starts with
# start_workers, grows while fewer than min_spare workers are idle but never
# past max_workers, queues what finds every worker busy (and says which key
# to raise), and shrinks back to max_spare idle workers once the load is
# gone, one worker a second.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $d = start_daemon(args => [qw(--pool dynamic --start-workers 2 --min-spare 1
    --max-spare 2 --max-workers 5)]);
ok wait_for(sub { worker_pids($d) == 2 }, 5), 'starts with start_workers (2) workers'
    or diag scalar worker_pids($d);

# Twelve slow requests at once: more than max_workers, enough for
# requests to wait for several of the master's once-a-second looks (the
# pool reaches 5 workers after about two).
my $t0 = time;
my @socks = map { raw_connect($d) } 1 .. 12;
print {$_} fcgi_request_bytes(1, 'sleep.pl', query => '3') for @socks;
# Worker counts over time, while the load comes and goes: the answers
# wait in the sockets.
my @seen;
while (time - $t0 < 15) {
    push @seen, [ time - $t0, scalar worker_pids($d) ];
    last if $seen[-1][0] > 6.5 && $seen[-1][1] == 2;
    sleep 0.1;
}
my ($most) = sort { $b <=> $a } map { $_->[1] } @seen;
my $trace = join ' ', map { sprintf '%.1f:%d', @$_ } @seen;
is $most, 5, 'the pool grew to max_workers (5) under load and no further' or diag $trace;
my %pids;
for my $s (@socks) {
    my ($recs) = read_records($s, timeout => 20);
    my ($pid) = collect_response($recs, 1)->{stdout} =~ /done (\d+)/;
    $pids{ $pid // 'none' }++;
}
ok !$pids{none}, 'all 12 requests answered, those past max_workers after a wait'
    or diag explain \%pids;
is scalar(keys %pids), 5, 'by 5 different workers';
like $d->log_text, qr/all 5 workers are busy; requests wait: (\d+ in the master's queue|some in the (ready queue|listen backlog))(, some in the [a-z ]+)* \(raise max_workers if this lasts\)/,
    'the queue is logged with the key to raise';

# Idle again: down to max_spare (2) idle workers, one retired a second.
is $seen[-1][1], 2, 'shrinks back to max_spare (2) after the load' or diag $trace;
my @drops = map { $seen[$_][0] } grep { $seen[$_][1] < $seen[ $_ - 1 ][1] } 1 .. $#seen;
my @steps = map { $seen[$_ - 1][1] - $seen[$_][1] } grep { $seen[$_][1] < $seen[ $_ - 1 ][1] } 1 .. $#seen;
is_deeply \@steps, [1, 1, 1], 'one worker at a time' or diag $trace;
ok !(grep { $drops[$_] - $drops[ $_ - 1 ] < 0.5 } 1 .. $#drops), 'a second apart' or diag $trace;
sleep 1.5;
is scalar(worker_pids($d)), 2, 'and stays there (within min_spare..max_spare)';
like $d->log_text, qr/exited with status 0/, 'retired workers left cleanly';
my ($out) = fcgi_request($d, 'hello.pl');
like $out, qr/Hello/i, 'the smaller pool serves';
$d->stop;
like $d->log_text, qr/stopped \(most workers busy at once: 5;/, 'max_active: 5 workers were busy at once';

# A static pool: max_active, and the warning names its key.
$d = start_daemon(workers => 1);
my @two = map { raw_connect($d) } 1 .. 2;
# The second waits 2.5 s: longer than between two of the master's looks.
print {$_} fcgi_request_bytes(1, 'sleep.pl', query => '2.5') for @two;
my $answered = grep { collect_response((read_records($_, timeout => 10))[0], 1)->{stdout} =~ /done/ } @two;
is $answered, 2, 'static: the queued request is served after the busy one';
$d->stop;
like $d->log_text, qr/most workers busy at once: 1;/, 'static: max_active 1';
like $d->log_text, qr/all 1 workers are busy; requests wait: (\d+ in the master's queue|some in the (ready queue|listen backlog))(, some in the [a-z ]+)* \(raise workers if this lasts\)/,
    'static: the queue is logged with the key to raise';

# Settings out of range name their key and stop the start.
my $bad = `${\ bin_path()} run --listen /nonexistent/x.sock --pool dynamic --min-spare 3 --max-spare 2 2>&1`;
like $bad, qr/min_spare: 3 is more than max_spare \(2\)/, 'min_spare > max_spare is refused';
$bad = `${\ bin_path()} run --listen /nonexistent/x.sock --max-spare 2 2>&1`;
like $bad, qr/max_spare: only applies with pool = "dynamic"/, 'dynamic keys need pool = dynamic';
done_testing;
