# Limits on a worker (issue 10 item 2): max_rss and max_unshared recycle a
# worker after the request that took it past the limit (that response is
# whole; one log line names the limit and the figure); slowlog_timeout logs
# where a slow script is, once, and lets it finish; listen_backlog reaches
# listen(2).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

sub pid_of { my ($out) = @_; return $out =~ /(?:^|\s)(\d+)\s*$/ ? $1 : 'none' }

for my $case (['--max-rss', '60M', 'grow.pl', 'resident memory', 'max_rss'],
              ['--max-unshared', '40M', 'grow.pl', 'private memory', 'max_unshared']) {
    my ($flag, $limit, $script, $what, $key) = @$case;
    my $d = start_daemon(workers => 1, args => [$flag, $limit]);
    my $first = pid_of(scalar fcgi_request($d, 'pid.pl'));
    is pid_of(scalar fcgi_request($d, 'pid.pl')), $first, "$key: a small worker stays";
    my ($out, $err, $rc) = fcgi_request($d, $script);
    my $r = parse_cgi($out);
    is $r->{status}, 200, "$key: the request that crossed the limit is answered";
    like $r->{body}, qr/^\w+ $first$/m, "... in full, by the same worker";
    my $next = pid_of(scalar fcgi_request($d, 'pid.pl'));
    ok $next ne 'none' && $next ne $first, "$key: the next request is served by a new worker"
        or diag "first $first, next $next";
    like $d->log_text, qr/worker recycled: $what [\d.]+ MiB is over $key \([\d.]+ MiB\)/,
        "$key: the log names the limit and the figure";
    is scalar(() = $d->log_text =~ /worker recycled/g), 1, "$key: once";
    $d->stop;
}
done_testing;
