# 5 MiB of binary output (all byte values), written four ways, arrives whole:
# split over many records, bytes unchanged.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use FcgiSpawn::Test;

my $expect = join('', map { chr } 0 .. 255) x (5 * 1024 * 1024 / 256);
my $d = start_daemon(workers => 1);
for my $how (qw(print chunks syswrite printf)) {
    my ($out, $err, $rc) = fcgi_request($d, 'large.pl', query => "how=$how");
    is $rc, 0, "$how: request ok";
    my $r = parse_cgi($out);
    is cgi_header($r, 'Content-Length'), length $expect, "$how: Content-Length header";
    is length($r->{body}), length($expect), "$how: body length";
    is md5_hex($r->{body}), md5_hex($expect), "$how: body MD5";
}

# Record level: no record content above 65535, padding well-formed.
my $s = raw_connect($d);
print {$s} fcgi_request_bytes(1, 'large.pl');
my ($recs, $why) = read_records($s, timeout => 30);
my $res = collect_response($recs, 1);
is $why, 'done', 'raw: END_REQUEST';
my @stdout = grep { $_->{type} == FCGI_STDOUT } @$recs;
cmp_ok scalar(@stdout), '>', 80, 'raw: output split into many records';
ok !(grep { length $_->{content} > 65535 } @stdout), 'raw: no record over 65535';
ok $res->{stdout_eof}, 'raw: empty STDOUT record closes the stream';
my ($body) = $res->{stdout} =~ /\r?\n\r?\n(.*)\z/s;
is md5_hex($body // ''), md5_hex($expect), 'raw: body MD5';
$d->stop;
done_testing;
