#!/usr/bin/perl
# The request body as the script reads it: length, CR count, MD5.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $body = do { local $/; <STDIN> };
$body = '' unless defined $body;
my $cr = () = $body =~ /\r/g;
print STDOUT "Content-Type: text/plain\n\n", 'length=', length($body), " cr=$cr md5=", md5_hex($body), "\n";
