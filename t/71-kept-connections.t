# A worker holding an idle kept-alive connection still takes new
# connections (the web server may keep more connections open than there are
# workers), and a request on the old connection is still answered later.
# A stop meant for an abandoned request never ends the next one.
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
done_testing;
