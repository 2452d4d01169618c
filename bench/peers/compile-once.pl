#!/usr/bin/perl
# Compile-once peer: FCGI + FCGI::ProcManager (N workers), each script's
# body compiled once per worker into a sub (first request) and called for
# every request: the hand-written persistent FastCGI app, no isolation.
#
#   compile-once.pl --listen SOCK --nproc N [--preload MODULE]...
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BenchPeer;

my $opt = BenchPeer::parse_args(@ARGV);
BenchPeer::preload($opt->{preload});
my $sock    = BenchPeer::open_socket($opt->{listen});
my $request = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%ENV, $sock);
my $pm      = BenchPeer::manage($opt->{nproc});

my %compiled;
while ($request->Accept >= 0) {
    $pm->pm_pre_dispatch;
    my $script = $ENV{SCRIPT_FILENAME};
    my $code = $compiled{$script} //= eval { BenchPeer::compile_file($script) };
    if ($code) {
        BenchPeer::reset_cgi();
        local $0 = $script;
        BenchPeer::run_guarded($code);
    } else {
        warn $@;
        print "Status: 500\r\nContent-Type: text/plain\r\n\r\ncompile error\n";
    }
    $request->Finish;
    $pm->pm_post_dispatch;
}
