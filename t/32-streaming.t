# $| = 1 output is seen progressively by the client, not at the end.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
my $s = raw_connect($d);
print {$s} fcgi_request_bytes(1, 'stream.pl');
my %seen;    # tick number => time we received it
my $buf = '';
my ($recs, $why) = read_records($s, until => sub {
    my ($rec) = @_;
    if ($rec->{type} == FCGI_STDOUT) {
        $buf .= $rec->{content};
        while ($buf =~ /tick (\d+) /g) { $seen{$1} //= time }
    }
    return $rec->{type} == FCGI_END_REQUEST;
}, timeout => 20);
is $why, 'done', 'request ended';
is_deeply [ sort keys %seen ], [ 1 .. 5 ], 'five ticks';
my $spread = $seen{5} - $seen{1};
cmp_ok $spread, '>', 1.0, sprintf('ticks arrived spread over time (%.2fs between first and last), not all at the end', $spread);
$d->stop;
done_testing;
