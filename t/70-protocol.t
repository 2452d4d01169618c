# FastCGI record level: keep-conn, GET_VALUES, unknown type and role,
# multiplexing refused, padding, long name-value pairs, ABORT_REQUEST,
# client gone, malformed input (one log line, worker lives on).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
my ($pid0) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
ok $pid0, "worker $pid0";

sub worker_same {
    my ($what) = @_;
    my ($p) = fcgi_request($d, 'pid.pl', timeout => 10) =~ /(\d+)/;
    is $p, $pid0, "$what: the same worker serves the next request";
}

# keep-conn: two requests on one connection, then one without the flag.
{
    my $s = raw_connect($d);
    for my $id (1, 2) {
        print {$s} fcgi_request_bytes($id, 'hello.pl', keep_conn => 1, query => "name=k$id");
        my ($recs, $why) = read_records($s, timeout => 10);
        my $r = collect_response($recs, $id);
        ok $r->{ended}, "keep-conn request $id ended";
        like $r->{stdout}, qr/Hello, k$id!/, "keep-conn request $id answered";
        is $r->{protocol_status}, FCGI_REQUEST_COMPLETE, "keep-conn request $id REQUEST_COMPLETE";
    }
    print {$s} fcgi_request_bytes(3, 'hello.pl', query => 'name=last');
    my ($recs) = read_records($s, timeout => 10);
    like collect_response($recs, 3)->{stdout}, qr/Hello, last!/, 'third request answered';
    my (undef, $why) = read_records($s, timeout => 5);
    is $why, 'eof', 'without FCGI_KEEP_CONN the connection is closed after the request';
}

# GET_VALUES
{
    my $s = raw_connect($d);
    print {$s} fcgi_record(FCGI_GET_VALUES, 0, fcgi_nv(FCGI_MAX_CONNS => '', FCGI_MAX_REQS => '', FCGI_MPXS_CONNS => ''));
    my ($recs, $why) = read_records($s, until => sub { $_[0]{type} == FCGI_GET_VALUES_RESULT }, timeout => 5);
    is $why, 'done', 'GET_VALUES_RESULT received';
    my %v;
    if ($why eq 'done') {
        my $c = $recs->[-1]{content};
        while (length $c) {
            my @len;
            for (1, 2) {
                my $l = unpack 'C', $c;
                if ($l & 0x80) { $l = unpack('N', $c) & 0x7fffffff; substr($c, 0, 4, '') } else { substr($c, 0, 1, '') }
                push @len, $l;
            }
            my $k = substr($c, 0, $len[0], '');
            $v{$k} = substr($c, 0, $len[1], '');
        }
        is $recs->[-1]{id}, 0, 'GET_VALUES_RESULT has request id 0';
    }
    is $v{FCGI_MPXS_CONNS}, '0', 'FCGI_MPXS_CONNS=0';
    like $v{FCGI_MAX_CONNS} // '', qr/^[1-9]\d*$/, 'FCGI_MAX_CONNS is a number';
    like $v{FCGI_MAX_REQS} // '', qr/^[1-9]\d*$/, 'FCGI_MAX_REQS is a number';

    # unknown management record type, same connection
    print {$s} fcgi_record(99, 0, 'whatever');
    ($recs, $why) = read_records($s, until => sub { $_[0]{type} == FCGI_UNKNOWN_TYPE }, timeout => 5);
    is $why, 'done', 'UNKNOWN_TYPE received';
    is length($recs->[-1]{content}), 8, 'UNKNOWN_TYPE body is 8 bytes';
    is unpack('C', $recs->[-1]{content}), 99, 'UNKNOWN_TYPE names type 99';

    # and the connection still takes a request
    print {$s} fcgi_request_bytes(1, 'hello.pl');
    ($recs) = read_records($s, timeout => 10);
    like collect_response($recs, 1)->{stdout}, qr/Hello, world!/, 'request after management records answered';
}

# unknown role
{
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'hello.pl', role => 9);
    my ($recs, $why) = read_records($s, timeout => 5);
    my $r = collect_response($recs, 1);
    ok $r->{ended}, 'unknown role: END_REQUEST';
    is $r->{protocol_status}, FCGI_UNKNOWN_ROLE, 'unknown role: FCGI_UNKNOWN_ROLE';
    is $r->{stdout}, '', 'unknown role: script not run';
}

# second request id while the first is still being received: CANT_MPX_CONN
{
    my $s = raw_connect($d);
    my $req1 = fcgi_request_bytes(1, 'hello.pl', keep_conn => 1, query => 'name=one');
    my $stdin_end = fcgi_record(FCGI_STDIN, 1, '');
    substr($req1, -length $stdin_end) = '';    # hold back the end of request 1's STDIN
    print {$s} $req1 . fcgi_begin(2, FCGI_RESPONDER, FCGI_KEEP_CONN) . $stdin_end;
    my ($recs, $why) = read_records($s, until => sub { collect_response($_[1], 1)->{ended} && collect_response($_[1], 2)->{ended} }, timeout => 10);
    my $r2 = collect_response($recs, 2);
    ok $r2->{ended}, 'second request id: END_REQUEST';
    is $r2->{protocol_status}, FCGI_CANT_MPX_CONN, 'second request id: FCGI_CANT_MPX_CONN';
    like collect_response($recs, 1)->{stdout}, qr/Hello, one!/, 'first request completed normally';
    # The refused id's late records are skipped; sent again once request 1
    # was answered, it is served, and so is id 1 again.
    print {$s} fcgi_record(FCGI_PARAMS, 2, '') . fcgi_record(FCGI_STDIN, 2, '')
        . fcgi_request_bytes(2, 'hello.pl', keep_conn => 1, query => 'name=two')
        . fcgi_request_bytes(1, 'hello.pl', keep_conn => 1, query => 'name=again');
    my $ended = 0;
    ($recs, $why) = read_records($s, until => sub { $_[0]{type} == FCGI_END_REQUEST && ++$ended == 2 }, timeout => 10);
    is $why, 'done', 'the refused id and the first id, sent again: both ended';
    like collect_response($recs, 2)->{stdout}, qr/Hello, two!/, 'the refused id is served once the first request ended';
    like collect_response($recs, 1)->{stdout}, qr/Hello, again!/, 'and the first id, reused';
}

# padding, params and stdin spread over many small records, 4-byte lengths
{
    my $s = raw_connect($d);
    my $long = 'L' x 70_000;
    print {$s} fcgi_request_bytes(1, 'env.pl', chunk => 13, pad => 7, params => { HTTP_X_LONG => $long, 'HTTP_X_' . ('N' x 200) => 'v' });
    my ($recs) = read_records($s, timeout => 10);
    my $out = collect_response($recs, 1)->{stdout};
    ok index($out, "ENV:HTTP_X_LONG=$long\n") >= 0, '70000-byte param value over 13-byte padded records';
    like $out, qr/^ENV:HTTP_X_N{200}=v$/m, '200-byte param name (4-byte length)';
    $s = raw_connect($d);
    my $body = join '', map { chr($_ % 251) } 1 .. 50_000;
    print {$s} fcgi_request_bytes(1, 'post.pl', query => 'mode=read', stdin => $body, chunk => 1000, pad => 3);
    ($recs) = read_records($s, timeout => 10);
    like collect_response($recs, 1)->{stdout}, qr/^length=50000$/m, 'stdin over 50 padded records';
}

# FCGI_ABORT_REQUEST ends the script at its next write
{
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'slow-writer.pl', keep_conn => 1);
    my ($recs) = read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /line 2/ }, timeout => 10);
    my $t0 = time;
    print {$s} fcgi_record(FCGI_ABORT_REQUEST, 1, '');
    my ($more, $why) = read_records($s, timeout => 15);
    is $why, 'done', 'ABORT_REQUEST: END_REQUEST sent';
    cmp_ok time - $t0, '<', 3, 'ABORT_REQUEST: the script stopped well before its 10 s';
    sleep 1;
    ok $d->log_text !~ /slow-writer finished/, 'aborted script did not run to the end';
    # The kept connection would hold the only worker: release it first.
    close $s;
    worker_same('after ABORT_REQUEST');
}

# client goes away mid-script
{
    my $s = raw_connect($d);
    print {$s} fcgi_request_bytes(1, 'slow-writer.pl');
    read_records($s, until => sub { $_[0]{type} == FCGI_STDOUT && $_[0]{content} =~ /line 2/ }, timeout => 10);
    my $lines = () = $d->log_text =~ /\n/g;
    close $s;
    my $t0 = time;
    ok wait_for(sub { my ($p) = (fcgi_request($d, 'pid.pl', timeout => 5))[0] =~ /(\d+)/; $p }, 8), 'served again after the client left';
    cmp_ok time - $t0, '<', 5, 'the abandoned script stopped at its next write (did not run its 10 s)';
    ok $d->log_text !~ /slow-writer finished/, 'abandoned script did not run to the end';
    worker_same('after the client left');
}

# a request whose client closed before a worker took it is skipped
{
    my $busy = raw_connect($d);
    print {$busy} fcgi_request_bytes(1, 'sleep.pl', query => '1');
    read_records($busy, until => sub { $_[0]{type} == FCGI_STDOUT }, timeout => 10);
    my $gone = raw_connect($d);
    print {$gone} fcgi_request_bytes(1, 'marker.pl', query => 'm=skipped');
    close $gone;
    my ($recs) = read_records($busy, timeout => 10);
    ok collect_response($recs, 1)->{ended}, 'busy request finished';
    worker_same('after the skipped request');
    ok $d->log_text !~ /marker-ran-skipped/, 'the request of a client that had gone was not run';
}

# malformed input: garbage, bad version, truncated record
for my $case (
    [ 'HTTP garbage', "GET / HTTP/1.0\r\nHost: x\r\n\r\n" ],
    [ 'bad version', pack('CCnnCx', 2, FCGI_BEGIN_REQUEST, 1, 8, 0) . pack('nCx5', 1, 0) ],
    [ 'truncated record', pack('CCnnCx', 1, FCGI_PARAMS, 1, 500, 0) . 'x' x 10 ],
    [ 'name-value length past the record', fcgi_begin(1) . fcgi_record(FCGI_PARAMS, 1, pack("CC", 100, 1) . "ab") . fcgi_record(FCGI_PARAMS, 1, "") ],
) {
    my ($what, $bytes) = @$case;
    my @before = $d->log_lines;
    my $s = raw_connect($d);
    print {$s} $bytes;
    shutdown $s, 1 if $what eq 'truncated record';
    my (undef, $why) = read_records($s, timeout => 5);
    is $why, 'eof', "$what: connection closed";
    ok wait_for(sub { $d->log_lines > @before }, 3), "$what: logged";
    sleep 0.3;
    my @new = ($d->log_lines)[ @before .. $d->log_lines - 1 ];
    is scalar(@new), 1, "$what: exactly one log line" or diag join "\n", @new;
    worker_same($what);
}
$d->stop;
done_testing;
