# The same behaviours again, end to end through a real nginx (upstream with
# keepalive, fastcgi_keep_conn on): GET, POST, multipart upload, redirect,
# cookies, CGI::Carp fatalsToBrowser, 404/403 status, streaming.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 2, preload => ['CGI']);
my $ngx = start_nginx($d);

my $res = http_get($ngx, '/hello.pl?name=nginx%20%26%20co');
is $res->{status}, 200, 'GET 200';
is $res->{headers}{'content-type'}, 'text/html; charset=utf-8', 'Content-Type from CGI.pm';
is $res->{content}, "<p>Hello, nginx &amp; co!</p>\n", 'GET body';

$res = http_get($ngx, '/env.pl?x=1');
like $res->{content}, qr/^ENV:SCRIPT_FILENAME=\Q${\ script_path('env.pl')}\E$/m, 'SCRIPT_FILENAME from nginx';
like $res->{content}, qr/^ENV:SERVER_SOFTWARE=nginx/m, 'nginx params reach %ENV';
like $res->{content}, qr/^ENV:REQUEST_URI=\/env\.pl\?x=1$/m, 'REQUEST_URI';

$res = http_post($ngx, '/form.pl', 'a=1&b=%3Cb%3E&a=2');
is $res->{status}, 200, 'POST 200';
is $res->{content}, "method=POST\na=1\na=2\nb=<b>\n", 'POST body parsed by CGI.pm';

my $file = join '', map { chr(int rand 256) } 1 .. 1_500_000;
my ($body, $type) = multipart_body(note => 'via nginx', file => [ 'photo.jpg', $file, 'image/jpeg' ]);
$res = http_post($ngx, '/upload.pl', $body, $type);
is $res->{status}, 200, 'upload 200';
like $res->{content}, qr/^size=${\ length $file}$/m, 'upload size';
like $res->{content}, qr/^md5=${\ md5_hex($file)}$/m, 'upload MD5';
like $res->{content}, qr/^note=via nginx$/m, 'upload: other field';

$res = http_get($ngx, '/redirect.pl');
is $res->{status}, 302, 'redirect: 302';
like $res->{headers}{location} // '', qr{/hello\.pl\?name=redirected$}, 'redirect: Location';

$res = http_get($ngx, '/cookie.pl');
is $res->{content}, "got=none\n", 'no cookie sent';
like $res->{headers}{'set-cookie'} // '', qr/^flavour=oatmeal; path=\//, 'Set-Cookie header';
$res = http_get($ngx, '/cookie.pl', { cookie => 'flavour=chocolate' });
is $res->{content}, "got=chocolate\n", 'cookie read';

$res = http_get($ngx, '/carp.pl');
is $res->{status}, 500, 'CGI::Carp fatalsToBrowser: 500';
like $res->{content}, qr/carp-fatal-marker/, 'fatalsToBrowser shows the message in the page';

$res = http_get($ngx, '/die.pl');
is $res->{status}, 500, 'die: 500';
$res = http_get($ngx, '/missing.pl');
is $res->{status}, 404, 'missing: 404';
$res = http_get($ngx, '/exit.pl?code=2');
is $res->{status}, 200, 'exit 2 after a page: 200';
is $res->{content}, "before exit\n", 'exit: page intact';

$res = http_get($ngx, '/large.pl?how=chunks');
is md5_hex($res->{content}), md5_hex(join('', map { chr } 0 .. 255) x 20480), '5 MiB binary through nginx';

$res = http_get($ngx, '/fds.pl');
like $res->{content}, qr/\A1 perl\n2 system\n3 perl\n4 backticks\n/, 'child process output in order through nginx';

my @st = map { http_get($ngx, '/pid.pl')->{status} } 1 .. 20;
is_deeply \@st, [ (200) x 20 ], '20 more requests over kept upstream connections';

unlike $ngx->error_log_text, qr/\[(error|crit|alert|emerg)\].*upstream (sent|prematurely)/,
    'nginx logged no upstream protocol error' or diag $ngx->error_log_text;
$ngx->stop;
$d->stop;
done_testing;
