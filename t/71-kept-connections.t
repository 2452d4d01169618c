# A worker holding an idle kept-alive connection still takes new
# connections (the web server may keep more connections open than there are
# workers), and a request on the old connection is still answered later.
# A stop meant for an abandoned request never ends the next one. Requests
# pipelined on one connection (sent before the previous one was answered)
# are all served, in order, whichever worker serves them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);

my $idle = raw_connect($d);
print {$idle} fcgi_request_bytes(1, 'hello.pl', keep_conn => 1, query => 'name=first');
my ($recs) = read_records($idle, timeout => 10);
like collect_response($recs, 1)->{stdout}, qr/Hello, first!/, 'first request on a kept connection';

# The only worker now holds $idle open; a new connection must not wait for it.
my $t0 = time;
my ($out) = fcgi_request($d, 'hello.pl', query => 'name=second', timeout => 10);
like $out, qr/Hello, second!/, 'a new connection is served while another is kept open';
cmp_ok time - $t0, '<', 2, 'promptly';

print {$idle} fcgi_request_bytes(2, 'hello.pl', keep_conn => 1, query => 'name=third');
($recs) = read_records($idle, timeout => 10);
like collect_response($recs, 2)->{stdout}, qr/Hello, third!/, 'the kept connection still works';
close $idle;

# Abandon streaming requests right after their first output, each followed
# at once by a normal request: none of those may be hit by the late stop.
my $bad = 0;
for my $round (1 .. 25) {
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'slow-writer.pl');
    read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT }, timeout => 10);
    close $s;
    my ($o) = fcgi_request($d, 'hello.pl', query => "name=r$round", timeout => 10);
    $bad++ unless defined $o && $o =~ /Hello, r$round!/;
}
is $bad, 0, 'every request after an abandoned one was answered normally';
unlike $d->log_text, qr/produced no output/, 'no empty responses';
$d->stop;

# Pipelined requests: a request that follows another on the same connection
# before the first was answered is served after it, in order, whoever
# serves it; bytes read past the end of one request travel with the
# connection. (A second request id whose BEGIN_REQUEST comes while the
# first's input has not ended is refused with FCGI_CANT_MPX_CONN: t/70.)

# Reads until $n requests ended; returns one response per END_REQUEST, in
# the order they came: {id, stdout, protocol_status, ids, management} (ids:
# every request id seen in that response's records; management: how many
# records of id 0 came among them).
sub answers {
    my ($s, $n) = @_;
    my $ended = 0;
    my ($recs, $why) = read_records($s, timeout => 10,
        until => sub { $_[0]{type} == FCGI_END_REQUEST && ++$ended == $n });
    my @out;
    my $cur = { stdout => '', ids => {} };
    for my $rec (@$recs) {
        if ($rec->{id} == 0) { $cur->{management}++; next }
        $cur->{ids}{ $rec->{id} } = 1;
        $cur->{stdout} .= $rec->{content} if $rec->{type} == FCGI_STDOUT;
        next unless $rec->{type} == FCGI_END_REQUEST;
        $cur->{id} = $rec->{id};
        $cur->{protocol_status} = unpack 'x4C', $rec->{content};
        push @out, $cur;
        $cur = { stdout => '', ids => {} };
    }
    return ($why, @out);
}

# Checks that the answers are hello.pl's for @names, in order, for @ids.
sub answered_in_order {
    my ($what, $ids, $names, $why, @got) = @_;
    is $why, 'done', "$what: every request answered";
    for my $i (0 .. $#$names) {
        my $r = $got[$i] || { stdout => '', ids => {} };
        my $nth = $i + 1;
        like $r->{stdout}, qr/Hello, $names->[$i]!/, "$what: request $nth answered, in turn";
        is_deeply [ keys %{ $r->{ids} } ], [ $ids->[$i] ], "$what: request ${nth}'s records carry its id";
    }
}

sub hello { my ($id, $name, %o) = @_; fcgi_request_bytes($id, 'hello.pl', query => "name=$name", %o) }

# One worker, so the worker that served the first request serves the next.
$d = start_daemon(workers => 1);
{
    my $s = raw_connect($d);
    print {$s} hello(1, 'p1', keep_conn => 1) . hello(2, 'p2', keep_conn => 1);
    answered_in_order('two requests in one write', [1, 2], ['p1', 'p2'], answers($s, 2));
    print {$s} hello(1, 'p3', keep_conn => 1) . hello(1, 'p4');
    answered_in_order('the same id again, the last without KEEP_CONN', [1, 1], ['p3', 'p4'], answers($s, 2));
    my (undef, $why) = read_records($s, timeout => 5);
    is $why, 'eof', 'closed after the request without FCGI_KEEP_CONN';

    # Three at once, with a management record between them.
    $s = raw_connect($d);
    print {$s} hello(1, 'q1', keep_conn => 1) . fcgi_record(FCGI_GET_VALUES, 0, fcgi_nv(FCGI_MPXS_CONNS => ''))
        . hello(2, 'q2', keep_conn => 1) . hello(3, 'q3', keep_conn => 1);
    my ($why3, @got) = answers($s, 3);
    answered_in_order('three requests in one write', [1, 2, 3], ['q1', 'q2', 'q3'], $why3, @got);
    is_deeply [ map { $_->{management} || 0 } @got ], [0, 1, 0], 'GET_VALUES answered in its turn';

    # The next request arrives while the first one's script runs: it waits
    # its turn (FastCGI has no multiplexing here, but a request whose
    # predecessor's input has ended is the next one, not a concurrent one).
    $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '0.5', keep_conn => 1);
    read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT }, timeout => 10);
    print {$s} hello(2, 'during', keep_conn => 1);
    my ($why2, @two) = answers($s, 2);
    is $why2, 'done', 'a request sent while the script runs: both answered';
    like $two[0]{stdout} // '', qr/done \d+/, 'the running request ends first, whole';
    like $two[1]{stdout} // '', qr/Hello, during!/, 'then the one sent while it ran';
    is $two[1]{protocol_status}, FCGI_REQUEST_COMPLETE, 'REQUEST_COMPLETE, not CANT_MPX_CONN';

    # An abort of the running request and the next request in one write.
    print {$s} fcgi_request_bytes(3, 'slow-writer.pl', keep_conn => 1);
    read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /line 2/ }, timeout => 10);
    print {$s} fcgi_record(FCGI_ABORT_REQUEST, 3, '') . hello(4, 'after-abort', keep_conn => 1);
    my ($why4, @ab) = answers($s, 2);
    is $why4, 'done', 'abort then a request: both ended';
    is $ab[0]{id}, 3, 'the aborted request ends first';
    like $ab[1]{stdout} // '', qr/Hello, after-abort!/, 'the request after the abort is served';
}
$d->stop;

# The connection changes hands between the two requests: each worker serves
# one request (--max-requests 1), so the second request, already read with
# the first, goes back to the master and on to another worker.
$d = start_daemon(workers => 2, max_requests => 1);
{
    for my $round (1 .. 3) {
        my $s = raw_connect($d);
        print {$s} hello(1, "r${round}a", keep_conn => 1) . hello(2, "r${round}b", keep_conn => 1)
            . hello(3, "r${round}c");
        answered_in_order("recycled worker, round $round", [1, 2, 3], ["r${round}a", "r${round}b", "r${round}c"],
            answers($s, 3));
    }
    # Read by the worker while its script ran, then handed on.
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '0.3', keep_conn => 1);
    read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT }, timeout => 10);
    print {$s} hello(2, 'moved', keep_conn => 1);
    my ($why, @two) = answers($s, 2);
    is $why, 'done', 'sent while the script ran, served by the next worker';
    like $two[1]{stdout} // '', qr/Hello, moved!/, 'the second request answered';
}
$d->stop;

# Two workers, both busy with other connections' slow requests, while a
# kept connection brings two requests at once: they wait, then are served
# in turn.
$d = start_daemon(workers => 2);
{
    my @busy = map { raw_connect($d) } 1 .. 2;
    print {$_} fcgi_request_bytes(1, 'sleep.pl', query => '0.5') for @busy;
    read_records($_, until => sub { $_[0]{type} == FCGI_STDOUT }, timeout => 10) for @busy;
    my $s = raw_connect($d);
    print {$s} hello(1, 'w1', keep_conn => 1) . hello(2, 'w2', keep_conn => 1);
    answered_in_order('both workers busy', [1, 2], ['w1', 'w2'], answers($s, 2));
}
$d->stop;
done_testing;
