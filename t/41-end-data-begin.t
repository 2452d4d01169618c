# BEGIN and END blocks run once per request, __DATA__/__END__ are readable
# from the start every time.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
for my $round (1 .. 3) {
    my ($out) = fcgi_request($d, 'end-data-begin.pl');
    is parse_cgi($out)->{body}, "begin_runs=1\ndata: line one\ndata: line two\nmain done\nend-block-output\n",
        "round $round: BEGIN once, __DATA__ from the start, END once, after the main body";
    ($out) = fcgi_request($d, 'end-section.pl');
    is parse_cgi($out)->{body}, "count=3\nfirst=after end one\n", "round $round: __END__ section readable";
    ($out) = fcgi_request($d, 'pid.pl');
    unlike $out, qr/end-block-output/, "round $round: END block of an earlier script does not run for another script";
}
$d->stop;
done_testing;
