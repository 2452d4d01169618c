# A plain GET through `fcgi-spawn request`: CGI.pm output, CGI environment,
# cwd, $0, __FILE__, isindex @ARGV, STDERR to the log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Spec;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 2, preload => ['CGI']);

my ($out, $err, $rc) = fcgi_request($d, 'hello.pl', query => 'name=<Ada>');
is $rc, 0, 'request exits 0';
my $r = parse_cgi($out);
is $r->{status}, 200, 'status 200';
like cgi_header($r, 'Content-Type'), qr{^text/html; charset=utf-8}i, 'CGI.pm Content-Type header';
is $r->{body}, "<p>Hello, &lt;Ada&gt;!</p>\n", 'body: param read and HTML-escaped';

($out, undef, $rc) = fcgi_request($d, 'hello.pl');
is parse_cgi($out)->{body}, "<p>Hello, world!</p>\n", 'no param from the previous request';

($out, undef, $rc) = fcgi_request($d, 'env.pl', query => 'a=1&b=2', params => { HTTP_X_TEST => 'xyz' });
is $rc, 0, 'env.pl exits 0';
my %env = $out =~ /^ENV:([^=\n]+)=(.*)$/mg;
my $script = script_path('env.pl');
is $env{SCRIPT_FILENAME}, $script, 'SCRIPT_FILENAME';
is $env{QUERY_STRING}, 'a=1&b=2', 'QUERY_STRING';
is $env{REQUEST_METHOD}, 'GET', 'REQUEST_METHOD';
is $env{GATEWAY_INTERFACE}, 'CGI/1.1', 'GATEWAY_INTERFACE';
is $env{HTTP_X_TEST}, 'xyz', 'extra param becomes %ENV';
ok !exists $env{FCGI_ROLE} || $env{FCGI_ROLE} eq 'RESPONDER', 'FCGI_ROLE absent or RESPONDER';
like $out, qr/^0=\Q$script\E$/m, '$0 is the script path';
like $out, qr/^CWD=\Q${\ scripts_dir()}\E$/m, 'cwd is the script directory';
like $out, qr/^FILE=\Q$script\E$/m, '__FILE__ is the script path';
like $out, qr/^ARGC=0$/m, 'no @ARGV for a query with "="';

($out) = fcgi_request($d, 'env.pl', query => 'foo+bar');
like $out, qr/^ARGV=foo\|bar$/m, 'isindex query string fills @ARGV like CGI';

($out, $err, $rc) = fcgi_request($d, 'warn.pl');
is parse_cgi($out)->{body}, "ok\n", 'warn.pl page';
ok wait_for(sub { $d->log_text =~ /stderr-child-marker/ }, 5), 'child stderr reached the log';
for my $m (qw(stderr-print-marker warn-marker stderr-child-marker)) {
    my ($line) = grep { /\Q$m\E/ } $d->log_lines;
    ok defined $line, "log has $m";
    like $line // '', qr/\Qwarn.pl\E/, "$m line names the script";
}
my ($wpid) = grep { /stderr-print-marker/ } $d->log_lines;
my @workers = worker_pids($d);
ok scalar(grep { ($wpid // '') =~ /\b$_\b/ } @workers), 'stderr line tagged with a worker pid'
    or diag "workers: @workers; line: " . ($wpid // 'none');

($out) = fcgi_request($d, 'perl-w.pl');
is parse_cgi($out)->{body}, "done\n", 'perl -w script runs';
ok wait_for(sub { $d->log_text =~ /uninitialized value.*perl-w\.pl/ }, 5), '#!perl -w switches warnings on'
    or diag $d->log_text;

is scalar(worker_pids($d)), 2, '--workers 2 gives two workers';

# The master ran its warm-up requests (perlrun and registry, CGI.pm loaded
# or not) before forking, and they left nothing behind.
unlike $d->log_text, qr/warm-up request before forking the workers failed/, 'master warm-up ran cleanly';
opendir my $tmp, File::Spec->tmpdir or die;
is_deeply [grep { /^fcgi-spawn-warm-up-$d->{pid}$/ } readdir $tmp], [], 'warm-up script removed';

$d->stop;
done_testing;
