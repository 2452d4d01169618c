# The shipped examples/ run unchanged under plain CGI (fcgiwrap behind nginx)
# and under fcgi-spawn behind nginx, with the same results.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use FcgiSpawn::Test;

my $examples = "$FindBin::Bin/../examples";
my $fcgiwrap = (grep { -x } '/usr/sbin/fcgiwrap', '/usr/bin/fcgiwrap')[0]
    or BAIL_OUT('fcgiwrap not found (script/install-deps installs it)');

my $d = start_daemon(workers => 2, root => [$examples], preload => ['CGI']);

# fcgiwrap as the plain-CGI reference, on its own socket next to ours.
my $wrap_sock = $d->dir . '/fcgiwrap.sock';
my $wrap_pid = fork // die "fork: $!";
if (!$wrap_pid) {
    setpgrp 0, 0;    # fcgiwrap -c forks; stop the whole group
    open STDERR, ">>", $d->dir . "/fcgiwrap.log";
    exec $fcgiwrap, '-c', '2', '-s', "unix:$wrap_sock" or POSIX::_exit(127);
}
ok wait_for(sub { -S $wrap_sock }, 10), 'fcgiwrap started';

my %ngx = (
    'fcgi-spawn' => start_nginx($d, root => $examples),
    'plain CGI'  => start_nginx($d, root => $examples, pass => $wrap_sock),
);
my $file = join '', map { chr(int rand 256) } 1 .. 300_000;
my ($up, $up_type) = multipart_body(file => [ 'x.bin', $file ]);

for my $mode (sort keys %ngx) {
    my $n = $ngx{$mode};
    my $res = http_get($n, '/index.cgi');
    is $res->{status}, 200, "$mode: index.cgi 200";
    like $res->{content}, qr{href="$_"}, "$mode: index links $_" for qw(form.pl upload.pl env.pl counter.pl);

    $res = http_post($n, '/form.pl', 'name=%3Cscript%3E&tags=perl&tags=cgi');
    like $res->{content}, qr{<dt>name</dt>\n<dd>&lt;script&gt;</dd>}, "$mode: form field echoed, escaped";
    like $res->{content}, qr{<dd>perl</dd>\n<dd>cgi</dd>}, "$mode: multi-valued field";

    $res = http_post($n, '/upload.pl', $up, $up_type);
    like $res->{content}, qr{<td id="size">300000</td>}, "$mode: upload size";
    like $res->{content}, qr{<td id="md5">${\ md5_hex($file)}</td>}, "$mode: upload MD5";

    $res = http_get($n, '/env.pl?probe=1');
    like $res->{content}, qr{<th align="left">QUERY_STRING</th><td>probe=1</td>}, "$mode: env.pl shows the query";

    for my $i (1 .. 3) {
        $res = http_get($n, '/counter.pl');
        like $res->{content}, qr{<strong id="hits">1</strong>}, "$mode: counter.pl hit $i shows 1";
    }
}
$_->stop for values %ngx;
kill "TERM", -$wrap_pid;
waitpid $wrap_pid, 0;
kill "KILL", -$wrap_pid;
$d->stop;
done_testing;
