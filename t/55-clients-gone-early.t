# Clients that close their connection before their answer, at any moment
# of the request's life, must not touch the requests after them. The case
# that broke was fork isolation's: a stop that came while the request's
# child was being forked, or after it was reaped, was sent to the worker
# (SIGPIPE). A worker in fork isolation runs no Perl between requests, so
# the signal waited in perl's pending list, and every later child ran the
# stop handler at its first op and ended with no output: each later
# request a 500, the worker never replaced (bench/run: 4,226 of 7,690
# answers bad after a few abandoned requests). The other modes run the
# same sequence.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use FcgiSpawn::Test;

for my $mode (qw(fork registry perlrun)) {
    my $d = start_daemon(workers => 1, isolation => $mode);
    my ($first) = fcgi_request($d, 'hello.pl');
    like $first, qr/Hello/, "$mode: a request is served";

    # Clients that send a request and close at once or a few milliseconds
    # later, so that the answer or the stop meets every moment of the
    # request's life (before the fork, while the child runs, after it was
    # reaped); after every twentieth, a request that waits for its answer.
    my @bad;
    for my $n (1 .. 200) {
        my $s = raw_connect($d);
        print {$s} fcgi_request_bytes(1, script_path('hello.pl'));
        sleep 0.0005 * ($n % 12);
        close $s;
        next if $n % 20;
        my $r = parse_cgi(scalar fcgi_request($d, 'hello.pl'));
        push @bad, "after $n: status $r->{status}"
            unless $r->{status} == 200 && $r->{body} =~ /Hello/;
    }
    is_deeply \@bad, [], "$mode: every request that waited for its answer got its page";
    $d->stop;
}
done_testing;
