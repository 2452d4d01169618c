#!/usr/bin/perl
# Modules that work on the real descriptors: Capture::Tiny swaps fd 1 and 2
# for temp files and back, IPC::Run plumbs children's fds.
use strict;
use warnings;
use Capture::Tiny qw(capture capture_stdout tee_stdout);
use IPC::Run qw(run);

print "Content-Type: text/plain\n\n";
print "1 before capture\n";
my ($out, $err) = capture {
    print "captured print\n";
    system 'echo captured system; echo captured stderr >&2';
};
print "2 captured stdout: $out";
print "3 captured stderr: $err";
my $teed = tee_stdout { print "4 teed\n"; system 'echo 5 teed system' };
print "6 tee returned ", length $teed, " bytes\n";
run ['echo', 'run captured'], '>', \my $run_out;
print "7 IPC::Run output: $run_out";
run ['tr', 'a-z', 'A-Z'], '<', \"8 through tr\n";
run ['sh', '-c', 'echo 9 run inherits fd 1'];
print "10 binmode ", (binmode(STDOUT) ? 'ok' : 'failed'), "\n";
binmode STDOUT, ':encoding(UTF-8)';
print "11 \x{263a}\n";
