# multipart/form-data upload through CGI.pm: size and MD5 intact, other
# fields parsed, CGI.pm's temp file removed after the request, in every
# isolation mode (fork's request child used to exit with CGI.pm's saved
# request still holding the file: bench/soak found one left per upload).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use FcgiSpawn::Test;

for my $mode (qw(perlrun registry fork)) {
    my $d = start_daemon(workers => 1, preload => ['CGI'], isolation => $mode);

    for my $size (0, 1, 70_000, 3 * 1024 * 1024 + 17) {
        my $content = join '', map { chr(int rand 256) } 1 .. $size;
        my ($body, $type) = multipart_body(note => "size $size", file => [ 'data.bin', $content ]);
        my ($out, $err, $rc) = fcgi_request($d, 'upload.pl', method => 'POST', data => $body,
            params => { CONTENT_TYPE => $type });
        is $rc, 0, "$mode, $size bytes: request ok";
        my $r = parse_cgi($out);
        is $r->{status}, 200, "$mode, $size bytes: 200";
        like $r->{body}, qr/^filename=data\.bin$/m, "$mode, $size bytes: file name";
        like $r->{body}, qr/^size=$size$/m, "$mode, $size bytes: size";
        like $r->{body}, qr/^md5=${\ md5_hex($content)}$/m, "$mode, $size bytes: MD5";
        like $r->{body}, qr/^note=size $size$/m, "$mode, $size bytes: other field";
        my ($tmp) = $r->{body} =~ /^tmpfile=(.+)$/m;
        ok !defined $tmp || wait_for(sub { !-e $tmp }, 3), "$mode, $size bytes: CGI.pm temp file removed" or diag "left: $tmp";
    }

    my ($out) = fcgi_request($d, 'upload.pl');
    is parse_cgi($out)->{body}, "no upload\n", "$mode: no upload leaks into the next request";
    $d->stop;
}
done_testing;
