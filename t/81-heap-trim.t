# --heap-trim: after a request that allocated and freed about 100 MB in
# pieces malloc keeps (below its mmap threshold, each followed by a small
# allocation), the worker gives the free heap back once the response is
# complete: its private memory (Private_Clean + Private_Dirty of
# /proc/PID/smaps_rollup) ends near its idle figure. With --heap-trim 0
# the same request leaves it about 100 MB higher, which is what makes the
# first half of this test able to fail.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Cwd qw(realpath);
use Test::More;
use Time::HiRes qw(sleep);
use FcgiSpawn::Test;

my $root = realpath(tempdir('fcgi-spawn-trim-XXXXXX', TMPDIR => 1, CLEANUP => 1));
spew("$root/hello.pl", "print \"Content-Type: text/plain\\n\\nhello\\n\";\n");
spew("$root/alloc.pl", <<'PERL');
use strict;
use warnings;
{
    my @keep;
    push @keep, ('x' x 60_000), ('y' x 200) for 1 .. 1700;
}
print "Content-Type: text/plain\n\nallocated and freed\n";
PERL

sub private_kb {
    my ($pid) = @_;
    my $kb = 0;
    $kb += $_ for slurp("/proc/$pid/smaps_rollup") =~ /^Private_(?:Clean|Dirty):\s+(\d+)/mg;
    return $kb;
}

for my $trim ('0', 'default') {
    my $d = start_daemon(workers => 1, root => $root, isolation => 'registry',
        args => [ ($trim eq '0' ? ('--heap-trim', '0') : ()), '--verbose' ]);
    my ($worker) = worker_pids($d);
    like scalar fcgi_request($d, "$root/hello.pl"), qr/hello/, "--heap-trim $trim: a first request";
    sleep 0.2;
    my $idle = private_kb($worker);
    like scalar fcgi_request($d, "$root/alloc.pl"), qr/allocated and freed/, "--heap-trim $trim: 100 MB allocated and freed";
    sleep 0.2;
    my $after = private_kb($worker);
    is_deeply [ worker_pids($d) ], [$worker], "--heap-trim $trim: the same worker";
    diag sprintf '--heap-trim %s: private memory idle %.1f MB, after the request %.1f MB', $trim, $idle / 1024, $after / 1024;
    if ($trim eq '0') {
        cmp_ok $after - $idle, '>', 50 * 1024, 'without the trim the freed heap stays in the worker';
        unlike $d->log_text, qr/heap trimmed/, '... and nothing is trimmed';
    }
    else {
        cmp_ok $after - $idle, '<', 3 * 1024, 'with the trim the worker is back within 3 MB of idle';
        like $d->log_text, qr/debug: heap trimmed: resident \d+ kB before, \d+ kB after, in \d+ µs/, '... and the log says so';
    }
    is $d->stop, 0, "--heap-trim $trim: stopped";
}
done_testing;
