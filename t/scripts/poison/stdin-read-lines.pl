#!/usr/bin/perl
# Reads STDIN (a GET's is empty: slurp mode still returns one empty
# "line"), then two lines of its own file through a package handle it never
# closes, and says what $. and a die message show. A new process starts
# with nothing read, and a second run must count from 1 again.
use strict;
use warnings;

my $body = do { local $/; <STDIN> };
my $after_stdin = $.;
open IN, '<', $0 or die "cannot read $0: $!";
my @two = (scalar <IN>, scalar <IN>);
my $msg = do { eval { die 'probe' }; $@ };
$msg =~ s/^probe at \S+ line \d+//;
print "Content-Type: text/plain\n\n",
    'body length: ', length($body // ''), "\n",
    "\$. after STDIN: $after_stdin\n",
    "\$. after own file: $.\n",
    "die suffix:$msg";
