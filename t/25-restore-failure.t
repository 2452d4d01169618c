# A worker that cannot put its interpreter back after a request (here the
# script left @INC read-only) completes that response, says which script
# and what could not be restored, exits, and is replaced; the next request
# gets a correct answer from the new worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

for my $mode (qw(perlrun registry)) {
    my $d = start_daemon(workers => 1, isolation => $mode);
    my ($before) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
    my ($out) = fcgi_request($d, 'restore-breaker.pl');
    my $r = parse_cgi($out);
    is $r->{status}, 200, "$mode: the response is complete";
    is $r->{body}, "page complete\n", "$mode: with its page";
    my $f = script_path('restore-breaker.pl');
    ok wait_for(sub { $d->log_text =~ /\Q$f\E: the state after \Q$f\E could not be restored \(special variables: Modification of a read-only value attempted[^)]*\); this worker will be replaced/ }, 5),
        "$mode: one log line names the script and what failed"
        or diag $d->log_text;
    my ($after) = (wait_for(sub { (fcgi_request($d, 'pid.pl'))[0] }, 10) || '') =~ /(\d+)/;
    ok $after && $after != $before, "$mode: a new worker ($after) replaced $before";
    my ($check) = fcgi_request($d, 'iso-check.pl');
    like $check, qr/^inc_leak=clean$/m, "$mode: the next response is correct";
    like $check, qr/^irs=newline$/m, "$mode: with a clean interpreter";
    $d->stop;
}
done_testing;
