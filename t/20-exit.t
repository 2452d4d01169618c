# exit ends the script, not the worker; the code is the FastCGI app status.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
my ($pid0) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
ok $pid0, "worker pid $pid0";

for my $code (0, 3) {
    my ($out, $err, $rc) = fcgi_request($d, 'exit.pl', query => "code=$code");
    my $r = parse_cgi($out);
    is $r->{status}, 200, "exit $code: status 200";
    is $r->{body}, "before exit\n", "exit $code: page complete, nothing after exit ran";
}

# The app status travels in END_REQUEST; read it from the raw record.
for my $code (0, 5) {
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'exit.pl', query => "code=$code");
    my ($recs, $why) = read_records($s);
    my $res = collect_response($recs, 1);
    ok $res->{ended}, "END_REQUEST received (exit $code)";
    is $res->{app_status}, $code, "app status is $code";
    is $res->{protocol_status}, FCGI_REQUEST_COMPLETE, 'protocol status REQUEST_COMPLETE';
}

my ($out) = fcgi_request($d, 'exit-in-eval.pl');
is parse_cgi($out)->{body}, "start\n", 'exit inside eval {} is not caught by the eval';

# Under CGI a script that prints nothing gets the client the web server's
# 500; here the daemon's, with the script's exit status as app status.
{
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'exit-before-output.pl');
    my ($recs) = read_records($s);
    my $res = collect_response($recs, 1);
    ok $res->{ended}, 'exit before output: the request ends';
    like $res->{stdout}, qr/\AStatus: 500 Internal Server Error\r\n/, 'exit before output: a 500 page';
    is $res->{app_status}, 0, 'exit before output: app status is the exit code, 0';
    # The line may be written just after the response went out.
    my $logged = qr/500: \S+exit-before-output\.pl produced no output \(exit status 0\)/;
    wait_for(sub { $d->log_text =~ $logged }, 5);
    like $d->log_text, $logged, 'exit before output: logged';
}

my ($pid1) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
is $pid1, $pid0, 'the same worker served every request (exit did not end it)';
$d->stop;
done_testing;
