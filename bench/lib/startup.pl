#!/usr/bin/perl
# bench/lib/startup.pl: how long fcgi-spawn takes from exec to its first
# answered request, and until its whole pool is up.
#
#   startup.pl BIN SCRIPT MARKER WORKERS ROUNDS [--preload M]...
#
# Each round starts `BIN run` on a fresh UNIX socket with WORKERS workers
# and the preloads, sends a FastCGI request for SCRIPT as soon as the socket
# accepts, retries until a response carrying MARKER arrives, then waits
# until WORKERS worker processes exist, and stops the daemon (TERM, by pid).
# Prints one line: RESULT median-first-response-ms median-all-workers-ms
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use FcgiSpawn::Test qw(fcgi_request_bytes read_records collect_response);

my ($bin, $script, $marker, $workers, $rounds, @rest) = @ARGV;
my @preload;
while (@rest) {
    my ($flag, $module) = splice @rest, 0, 2;
    push @preload, $flag, $module;
}
my (@first, @all);
for my $round (1 .. $rounds) {
    my $dir  = tempdir(CLEANUP => 1);
    my $sock = "$dir/s.sock";
    my $t0   = time;
    my $pid  = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', "$dir/out" or die;
        open STDERR, '>&', \*STDOUT or die;
        exec $bin, 'run', '--listen', $sock, '--workers', $workers, @preload,
            '--root', ($script =~ m{^(.*)/} ? $1 : '.'), '--log', "$dir/log"
            or POSIX::_exit(127);
    }
    my ($first, $all);
    my $deadline = $t0 + 30;
    while (!defined $first && time < $deadline) {
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
        if (!$s) { sleep 0.001; next }
        binmode $s;
        print {$s} fcgi_request_bytes(1, $script);
        my ($recs, $why) = read_records($s, timeout => 10);
        my $r = collect_response($recs, 1);
        $first = time - $t0 if $why eq 'done' && index($r->{stdout}, $marker) >= 0;
    }
    while (!defined $all && time < $deadline) {
        my $n = () = grep { /^\d+$/ && (stat_ppid($_) // 0) == $pid } do {
            opendir my $dh, '/proc' or die; readdir $dh;
        };
        $all = time - $t0 if $n >= $workers;
        sleep 0.001;
    }
    kill 'TERM', $pid;
    waitpid $pid, 0;
    die "round $round: no answer within 30 s:\n" . `cat $dir/log` unless defined $first && defined $all;
    push @first, $first;
    push @all, $all;
}
printf "RESULT %.0f %.0f\n", median(@first) * 1000, median(@all) * 1000;

sub median { my @s = sort { $a <=> $b } @_; $s[$#s / 2] }

sub stat_ppid {
    open my $fh, '<', "/proc/$_[0]/stat" or return;
    my $stat = <$fh> // return;
    return (split ' ', $stat =~ s/^.*\) //sr)[1];
}
