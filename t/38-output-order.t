# The bytes a script writes reach the client exactly as a plain CGI perl
# would put them on its stdout: Perl's buffered prints (kept in the worker
# until a flush), syswrite and POSIX::write on fd 1, children, autoflush,
# Capture::Tiny and IPC::Run swapping descriptors, a background child
# holding stdout, STDOUT reopened and restored. The oracle is the same
# script run by perl as a CGI program, its stdout a pipe.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use FcgiSpawn::Test;

my @scripts = qw(order-mixed.pl order-tools.pl order-background.pl order-reopen.pl);

# The script run as plain CGI: what perl writes to its stdout.
sub plain_cgi_output {
    my ($script) = @_;
    my $path = script_path($script);
    (my $dir = $path) =~ s{/[^/]+\z}{};
    local %ENV = (
        PATH            => $ENV{PATH},
        GATEWAY_INTERFACE => 'CGI/1.1',
        REQUEST_METHOD  => 'GET',
        QUERY_STRING    => '',
        SCRIPT_FILENAME => $path,
    );
    open my $from, '-|', 'sh', '-c', 'cd "$1" && exec perl "$2" 2>/dev/null', 'sh', $dir, $path
        or die "perl $path: $!";
    local $/;
    my $out = <$from>;
    close $from;
    return $out;
}

for my $isolation (qw(perlrun registry)) {
    my $d = start_daemon(workers => 1, isolation => $isolation);
    my ($worker) = worker_pids($d);
    for my $script (@scripts) {
        my $expected = plain_cgi_output($script);
        like $expected, qr/\n\n./, "$script: plain perl produced a page (oracle sane)";
        for my $round (1 .. 2) {
            my $t0 = time;
            my ($out, $err, $rc) = fcgi_request($d, $script);
            my $took = time - $t0;
            is $rc, 0, "$isolation $script round $round: request ok";
            is $out, $expected, "$isolation $script round $round: same bytes, same order as plain CGI";
            if ($script eq 'order-background.pl') {
                cmp_ok $took, '>=', 0.5, "$isolation round $round: response ended only when the background child closed stdout";
            }
        }
    }
    my ($pid) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
    is $pid, $worker, "$isolation: the same worker served every request";
    unlike $d->log_text, qr/between requests dropped/, "$isolation: no output was written outside a request";

    # A copy of stdout a script leaves open in the worker (tie-stdout.pl:
    # POSIX::dup(1) in a tied handle it never unties) is closed when the
    # script ends, as by a CGI process's exit: the next responses, with
    # children or without, end and carry only their own bytes.
    fcgi_request($d, 'poison/tie-stdout.pl');
    my ($out, undef, $rc) = fcgi_request($d, 'order-mixed.pl');
    is $rc, 0, "$isolation: a script with children after one that left a copy of stdout open: answered";
    is $out, plain_cgi_output('order-mixed.pl'), "$isolation: its own bytes, in order";
    ($out) = fcgi_request($d, 'pid.pl');
    is $out, "Content-Type: text/plain\r\n\r\n$worker\n", "$isolation: a plain script then: its own bytes only";
    like $d->log_text, qr/tie-stdout\.pl: descriptor \d+ left open on the script's stdout/, "$isolation: the stray copy is logged";

    # The same while the worker holds kept connections, parked during the
    # poison's request: the check for stray copies passes the worker's
    # own connections by and still finds the script's copy; each kept
    # connection's next response is its own. The poison lasts 50 ms: the
    # parked connections have gone to the master (after 2 ms) when it
    # makes its copy, which may take one of their numbers.
    my @kept = map { raw_connect($d) } 1 .. 3;
    for my $s (@kept) {
        print {$s} fcgi_request_bytes(1, 'pid.pl', keep_conn => 1);
        read_records($s, timeout => 10);
    }
    my $strays = sub { scalar(() = $d->log_text =~ /tie-stdout\.pl: descriptor \d+ left open on the script's stdout/g) };
    my $before = $strays->();
    fcgi_request($d, 'poison/tie-stdout.pl', query => 'wait=0.05');
    is $strays->(), $before + 1, "$isolation: with kept connections held, the stray copy is found and closed";
    for my $i (0 .. $#kept) {
        print {$kept[$i]} fcgi_request_bytes(2, 'pid.pl', keep_conn => 1);
        my ($recs) = read_records($kept[$i], timeout => 10);
        is collect_response($recs, 2)->{stdout}, "Content-Type: text/plain\r\n\r\n$worker\n",
            "$isolation: kept connection $i then: its own bytes only";
    }
    close $_ for @kept;
    $d->stop;
}
done_testing;
