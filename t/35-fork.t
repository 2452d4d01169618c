# A script that forks: the child's exit/die ends the child only; it never
# comes back into the worker's request loop as a second worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
my @before = worker_pids($d);
is scalar(@before), 1, 'one worker';
for my $how (qw(exit die)) {
    my ($out, $err, $rc) = fcgi_request($d, 'fork.pl', query => "how=$how");
    my $body = parse_cgi($out)->{body};
    like $body, qr/^child \d+$/m, "$how: child wrote to the client";
    like $body, qr/^parent \d+ done$/m, "$how: parent finished the page";
    like $body, qr/^child status=${\ ($how eq "exit" ? "3" : "255")}$/m, "$how: child exit status as in a plain process";
}
# The status the last request's waitpid left in $? is not the next
# script's: a child dying with $! clear exits with $? >> 8, 255 as in a new
# perl (it was 3, from fork.pl's child above).
my ($out) = fcgi_request($d, 'check/errno.pl');
like $out, qr/^child status at start=0$/m, '$? starts clear';
like $out, qr/^child that died exited with 255$/m, 'a dying child exits 255, not with the previous $?';
sleep 0.5;
is_deeply [ worker_pids($d) ], \@before, 'still exactly the one worker, no stray child left';
my ($pid) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
is $pid, $before[0], 'the worker serves on';
$d->stop;
done_testing;
