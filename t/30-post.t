# POST bodies reach STDIN whole, however the script reads them; CGI.pm
# urlencoded forms; a body shorter than CONTENT_LENGTH gives EOF, not a hang;
# no body leaks into the next request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1, preload => ['CGI']);

my $body = join '', map { chr(($_ * 7) % 256) } 0 .. 200_000;    # binary, spans many records
for my $mode (qw(read pieces sysread readline slurp)) {
    my ($out, $err, $rc) = fcgi_request($d, 'post.pl', method => 'POST', query => "mode=$mode", data => $body);
    is $rc, 0, "$mode: request ok";
    like $out, qr/^length=${\ length $body}$/m, "$mode: full length";
    like $out, qr/^md5=${\ md5_hex($body)}$/m, "$mode: same bytes";
}

my ($out) = fcgi_request($d, 'form.pl', method => 'POST', data => 'b=2&a=%3Cx%3E&a=second&empty=');
my $r = parse_cgi($out);
is $r->{status}, 200, 'form POST 200';
is $r->{body}, "method=POST\na=<x>\na=second\nb=2\nempty=\n", 'CGI.pm parsed the urlencoded body';

($out) = fcgi_request($d, 'form.pl', method => 'POST', query => 'q=1', data => 'p=2');
like $out, qr/^p=2$/m, 'POST body param';

($out) = fcgi_request($d, 'form.pl');
is parse_cgi($out)->{body}, "method=GET\n", 'no param survives into the next request';

# Raw: CONTENT_LENGTH says more than is sent -> EOF, not a hang.
my $s = raw_connect($d);
print {$s} fcgi_request_bytes(1, 'post.pl', query => 'mode=sysread', stdin => 'short', params => { CONTENT_LENGTH => 1000 });
my ($recs, $why) = read_records($s, timeout => 10);
my $res = collect_response($recs, 1);
ok $res->{ended}, 'short body: request ended' or diag "why=$why";
like $res->{stdout}, qr/^length=5$/m, 'short body: script saw the 5 bytes then EOF';

# CONTENT_LENGTH smaller than the body: the body is still read to the end of
# the stream, the connection stays usable (keep-conn).
$s = raw_connect($d);
print {$s} fcgi_request_bytes(1, 'post.pl', query => 'mode=read', stdin => 'x' x 100, params => { CONTENT_LENGTH => 10 }, keep_conn => 1);
($recs) = read_records($s, timeout => 10);
$res = collect_response($recs, 1);
like $res->{stdout}, qr/^length=10$/m, 'CONTENT_LENGTH 10: read() gets 10';
print {$s} fcgi_request_bytes(2, 'pid.pl', keep_conn => 1);
($recs) = read_records($s, timeout => 10);
$res = collect_response($recs, 2);
like $res->{stdout}, qr/^\d+$/m, 'next request on the same connection served';

# STDIN is kept between requests without a body; nothing of one request's
# body (or EOF state) reaches the next.
my @stdin_rounds = (
    ['POST', 'abcdefghij', 'abcde', 'a body, partly read'],
    ['GET',  undef,        '',      'no leftover of the last body'],
    ['GET',  undef,        '',      'again, on the kept handle'],
    ['POST', 'xyz',        'xyz',   'a body after EOF on the empty one'],
);
for my $round (@stdin_rounds) {
    my ($method, $data, $want, $what) = @$round;
    my ($o) = fcgi_request($d, 'stdin-peek.pl', method => $method, defined $data ? (data => $data) : ());
    is parse_cgi($o)->{body}, "read=[$want]\n", "STDIN: $what";
}

$d->stop;
done_testing;
