#!/usr/bin/perl
# bench/lib/drive.pl: a fixed number of FastCGI requests straight to a
# daemon's UNIX socket, from several client processes, one connection per
# request (as nginx without fastcgi_keep_conn), every response checked.
#
#   drive.pl SOCKET SCRIPT QUERY MARKER REQUESTS CLIENTS
#
# Prints one line: RESULT requests bad
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_STREAM);
use FcgiSpawn::Test qw(fcgi_request_bytes read_records collect_response);

my ($socket, $script, $query, $marker, $requests, $clients) = @ARGV;
my @kids;
for my $client (0 .. $clients - 1) {
    my $share = int($requests / $clients) + ($client < $requests % $clients ? 1 : 0);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $bad = 0;
        my $request = fcgi_request_bytes(1, $script, query => $query);
        for (1 .. $share) {
            my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $socket);
            if (!$s) { $bad++; next }
            binmode $s;
            print {$s} $request;
            my ($recs, $why) = read_records($s, timeout => 60);
            my $r = collect_response($recs, 1);
            $bad++ unless $why eq 'done' && index($r->{stdout}, $marker) >= 0;
        }
        POSIX::_exit($bad > 255 ? 255 : $bad);
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid $_, 0; $bad += $? >> 8 }
print "RESULT $requests $bad\n";
