# rand as a new process has it, every request (SPEC §3): workers forked from
# one master draw different numbers; each fork-mode request (a new process
# to the script) seeds its own, with its own $$ and $^T; and a script that
# seeds rand with a constant does not make the next script's rand
# predictable.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

subtest 'each worker reseeds after fork' => sub {
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
};

subtest 'fork mode: each request is a new process to the script' => sub {
    my $d = start_daemon(workers => 1, isolation => 'fork');
    my (@rand, %pid);
    for (1 .. 6) {
        my ($out) = fcgi_request($d, 'rand.pl');
        my ($pid, $r) = $out =~ /pid=(\d+) rand=(\d+)/ or do { fail "rand.pl answered: $out"; next };
        push @rand, $r;
        $pid{$pid} = 1;
    }
    my %distinct = map { $_ => 1 } @rand;
    is scalar(keys %distinct), 6, "six requests, six different numbers (@rand)";
    is scalar(keys %pid), 6, 'six different $$';
    my ($out) = fcgi_request($d, 'check/basetime.pl');
    like $out, qr/\$\^T: the script start/, '$^T is the request\'s start';
    my ($worker) = worker_pids($d);
    ok !$pid{$worker}, q{no request's $$ is the worker's};
    $d->stop;
};

# What rand gives after srand(42) and three draws: where the next script's
# numbers would come from if the seed leaked.
my $after_seed = `$^X -e 'srand 42; rand for 1 .. 3; print int rand 1e9'`;
for my $mode (qw(perlrun registry fork)) {
    subtest "$mode: a constant seed stays with its script" => sub {
        my $d = start_daemon(workers => 1, isolation => $mode);
        for (1 .. 2) {
            my ($seeded) = fcgi_request($d, 'poison/srand-fixed.pl');
            my ($out) = fcgi_request($d, 'rand.pl');
            my ($r) = $out =~ /rand=(\d+)/;
            ok defined $r, 'rand.pl answered after srand-fixed.pl';
            isnt $r, $after_seed, "its rand does not follow on from srand(42) ($r)";
        }
        $d->stop;
    };
}
done_testing;
