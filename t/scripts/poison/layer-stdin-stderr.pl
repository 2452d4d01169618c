#!/usr/bin/perl
# Layers on STDIN and STDERR, left there; reads the body through :crlf.
use strict;
use warnings;

binmode STDIN, ':crlf';
binmode STDERR, ':encoding(UTF-8)';
my $body = do { local $/; <STDIN> };
$body = '' unless defined $body;
print "Content-Type: text/plain\n\n", 'body length through :crlf: ', length($body), "\n";
print STDERR "stderr \x{263a}\n";
