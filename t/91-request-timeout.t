# --request-timeout: the client gets a 504 when nothing was sent, the log gets
# the timeout and a backtrace, and a script that refuses to stop costs its
# worker, which the pool replaces.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1, args => ['--request-timeout', 1]);

my $t0 = time;
my ($out) = fcgi_request($d, 'timeout-sleeper.pl', timeout => 15);
my $took = time - $t0;
like $out, qr/^Status: 504/m, 'a silent script past the timeout gives 504';
cmp_ok $took, '<', 5, sprintf('answered after %.1f s, not the 20 s the script wanted', $took);
like $d->log_text, qr/timeout-sleeper\.pl: request timeout after 1 s/, 'timeout logged';
like $d->log_text, qr/script stopped .* at \S+timeout-sleeper\.pl line 5\.\n.*::nap\(\) called at \S+timeout-sleeper\.pl line 6/s,
    'backtrace of the stopped script logged';
unlike $d->log_text, qr/timeout-sleeper finished/, 'the script did not run on';
my ($pid_before) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
ok $pid_before, 'next request served';

my $s = raw_connect($d);
print {$s} fcgi_request_bytes(1, 'timeout-stubborn.pl');
my ($recs, $why) = read_records($s, timeout => 20);
is $why, 'eof', 'the connection of the killed worker is closed';
like collect_response($recs, 1)->{stdout}, qr/stubborn/, 'output sent before the timeout reached the client';
ok wait_for(sub { $d->log_text =~ /did not stop within \d+ s of its timeout; replacing this worker/ }, 10),
    'a script that ignores the stop costs its worker';
my ($pid_after) = (wait_for(sub { (fcgi_request($d, 'pid.pl'))[0] }, 10) || '') =~ /(\d+)/;
ok $pid_after && $pid_after != $pid_before, "a new worker ($pid_after) replaced $pid_before";
unlike $d->log_text, qr/timeout-stubborn finished/, 'the stubborn script was ended';

$d->stop;
done_testing;
