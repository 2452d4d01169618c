#!/usr/bin/perl
# Ceiling: one perl runs the script body (compiled once into a sub) in a
# loop for SECONDS, STDIN and STDOUT in memory, no FastCGI, no HTTP.
# Prints "RESULT iterations per-second bad" (bad = output without MARKER).
#
#   perl-loop.pl [--body FILE] [--preload MODULE]... SCRIPT QUERY MARKER SECONDS
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BenchPeer;
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

GetOptions('body=s' => \my $body_file, 'preload=s' => \my @preload) or exit 2;
my ($script, $query, $marker, $seconds) = @ARGV;
die "usage: $0 [--body FILE] [--preload M]... SCRIPT QUERY MARKER SECONDS\n" unless defined $seconds;
BenchPeer::preload(\@preload);

my $body = '';
if ($body_file) { open my $fh, '<', $body_file or die "$body_file: $!\n"; local $/; $body = <$fh> }
my %env = (
    GATEWAY_INTERFACE => 'CGI/1.1', SERVER_PROTOCOL => 'HTTP/1.1',
    SERVER_SOFTWARE => 'perl-loop', SERVER_NAME => '127.0.0.1', SERVER_PORT => 80,
    HTTP_HOST => '127.0.0.1', REMOTE_ADDR => '127.0.0.1',
    REQUEST_METHOD => length $body ? 'POST' : 'GET', QUERY_STRING => $query,
    SCRIPT_FILENAME => $script, SCRIPT_NAME => '/' . ($script =~ s{.*/}{}r),
    REQUEST_URI => '/' . ($script =~ s{.*/}{}r) . (length $query ? "?$query" : ''),
    length $body ? (CONTENT_LENGTH => length $body,
                    CONTENT_TYPE => 'application/x-www-form-urlencoded') : (),
);

my $code = BenchPeer::compile_file($script);
my ($n, $bad, $out) = (0, 0, '');
open my $saved_out, '>&', \*STDOUT or die;
my $t0 = time;
my $until = $t0 + $seconds;
while (time < $until) {
    local %ENV = (%ENV, %env);
    local $0 = $script;
    BenchPeer::reset_cgi();
    close STDIN;
    open STDIN, '<', \$body or die;
    $out = '';
    close STDOUT;
    open STDOUT, ">", \$out or die;
    BenchPeer::run_guarded($code);
    close STDOUT;
    $n++;
    $bad++ if index($out, $marker) < 0;
}
my $elapsed = time - $t0;
open STDOUT, '>&', $saved_out or die;
printf "RESULT %d %.1f %d\n", $n, $n / $elapsed, $bad;
