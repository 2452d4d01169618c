# Many requests in one worker over a kept connection: the worker's RSS must
# not grow once it is warm (each request's namespace, and whatever its
# compile made, is really freed). A CGI.pm hello world in the default mode,
# and in perlrun a script with a __DATA__ section and END/BEGIN blocks
# (its compile used to leave ~1.4 kB behind every request); and in registry
# a body every other request (the std handles a GET kept open were opened
# again for the next POST, and perl leaked the new handles' layers, ~170
# bytes a request: bench/soak's workers grew 6 MB over 90,000 requests).
#
# FCGI_SPAWN_MEMORY_REQUESTS=100000 for the long run (default 10,000; RSS
# is compared between a tenth of them and all of them).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use FcgiSpawn::Test;

my $TOTAL  = $ENV{FCGI_SPAWN_MEMORY_REQUESTS} || 10_000;
my $WARMUP = int($TOTAL / 10);
my $LIMIT_KB = 256;

my @cases = (
    { name => 'hello.pl, default mode', script => 'hello.pl', daemon => {},
      query => sub { "name=n$_[0]&junk=" . ('x' x ($_[0] % 100)) }, expect => sub { qr/Hello, n$_[0]!/ } },
    { name => 'end-data-begin.pl (__DATA__), perlrun', script => 'end-data-begin.pl',
      daemon => { isolation => 'perlrun' }, query => sub { "n=$_[0]" },
      expect => sub { qr/data: line two\nmain done\nend-block-output\n\z/ } },
    { name => 'post.pl, a body every other request, registry', script => 'post.pl',
      daemon => { isolation => 'registry' }, query => sub { 'mode=read' },
      stdin => sub { $_[0] % 2 ? "field=$_[0]" : '' },
      expect => sub { my $len = $_[0] % 2 ? length "field=$_[0]" : 0; qr/^length=$len\n/m } },
);

for my $case (@cases) {
    my $d = start_daemon(workers => 1, preload => ['CGI'], %{ $case->{daemon} });
    my ($worker) = worker_pids($d);
    my $s = raw_connect($d);
    my $t0 = time;
    my ($failures, %rss) = (0);
    for my $n (1 .. $TOTAL) {
        my $id = 1 + $n % 60000;
        print {$s} fcgi_request_bytes($id, $case->{script}, keep_conn => 1, query => $case->{query}->($n),
            ($case->{stdin} ? (stdin => $case->{stdin}->($n)) : ()));
        my ($recs, $why) = read_records($s, timeout => 10);
        my $r = collect_response($recs, $id);
        if (!$r->{ended} || $r->{stdout} !~ $case->{expect}->($n)) {
            $failures++;
            diag "$case->{name}: request $n failed ($why): " . substr($r->{stdout}, 0, 300);
            last if $why ne 'done' || $failures > 5;
        }
        $rss{$n} = rss_kb($worker) if $n == $WARMUP || $n == $TOTAL;
    }
    my $secs = time - $t0;
    is $failures, 0, "$case->{name}: $TOTAL requests answered";
    is_deeply [ worker_pids($d) ], [$worker], "$case->{name}: one worker served them all";
    diag sprintf '%s: %d requests in %.1fs (%.0f req/s); VmRSS after %d: %s kB, after %d: %s kB',
        $case->{name}, $TOTAL, $secs, $TOTAL / ($secs || 1), $WARMUP, $rss{$WARMUP} // '?', $TOTAL,
        $rss{$TOTAL} // '?';
    ok defined $rss{$WARMUP} && defined $rss{$TOTAL}, "$case->{name}: RSS measured";
    cmp_ok(($rss{$TOTAL} // 1e9) - ($rss{$WARMUP} // 0), '<=', $LIMIT_KB,
        "$case->{name}: RSS growth over the last " . ($TOTAL - $WARMUP) . " requests at most $LIMIT_KB kB");
    $d->stop;
}
done_testing;
