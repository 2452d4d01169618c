# Each worker reseeds rand after fork: workers forked from one master must not
# produce the same "random" numbers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 2, max_requests => 1);
my %first_by_pid;
for (1 .. 12) {
    my ($out) = fcgi_request($d, 'rand.pl');
    my ($pid, $r) = $out =~ /pid=(\d+) rand=(\d+)/ or next;
    $first_by_pid{$pid} //= $r;
}
my @firsts = values %first_by_pid;
cmp_ok scalar(@firsts), '>=', 4, 'several workers answered (recycled after each request)';
my %distinct = map { $_ => 1 } @firsts;
is scalar(keys %distinct), scalar(@firsts), "each worker's first rand() differs (@firsts)";
$d->stop;
done_testing;
