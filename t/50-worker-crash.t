# A worker killed mid-request (kill -9 itself, POSIX::_exit) is replaced at
# once; the client gets an error, the next client a new worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
for my $how (qw(kill exit afteroutput)) {
    my ($old) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
    ok $old, "$how: worker $old";
    my ($out, $err, $rc) = fcgi_request($d, 'crash.pl', query => "how=$how", timeout => 20);
    isnt $rc, 0, "$how: client sees an error (no END_REQUEST)";
    unlike $out, qr/still alive/, "$how: script did not go on";
    ok wait_for(sub { !kill 0, $old }, 5), "$how: old worker $old is gone";
    my $new;
    ok wait_for(sub { ($new) = (fcgi_request($d, 'pid.pl', timeout => 5))[0] =~ /(\d+)/; $new }, 10),
        "$how: next request is served";
    isnt $new, $old, "$how: by a new worker ($new)";
    is scalar(worker_pids($d)), 1, "$how: pool back to one worker";
    like $d->log_text, qr/\b$old\b/, "$how: log mentions the dead worker $old";
}
ok $d->alive, 'master alive';
$d->stop;

# Through nginx: 502 for the crashing request, then 200.
$d = start_daemon(workers => 1);
my $ngx = start_nginx($d);
my $res = http_get($ngx, '/crash.pl?how=kill');
is $res->{status}, 502, 'nginx answers 502 for a crashed worker';
$res = http_get($ngx, '/hello.pl');
is $res->{status}, 200, 'nginx: the next request is served';
$ngx->stop;
$d->stop;
done_testing;
