#!/usr/bin/perl
# Reads the request body in the way ?mode= says and reports length and MD5.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my ($mode) = ($ENV{QUERY_STRING} || '') =~ /mode=(\w+)/;
$mode ||= 'read';
binmode STDIN;
my $body = '';
if ($mode eq 'read') {
    read(STDIN, $body, $ENV{CONTENT_LENGTH} || 0);
}
elsif ($mode eq 'pieces') {
    my $buf;
    $body .= $buf while read(STDIN, $buf, 7);
}
elsif ($mode eq 'sysread') {
    my $buf;
    $body .= $buf while sysread(STDIN, $buf, 4096);
}
elsif ($mode eq 'readline') {
    $body .= $_ while <STDIN>;
}
elsif ($mode eq 'slurp') {
    local $/;
    $body = <STDIN>;
    $body = '' unless defined $body;
}
print "Content-Type: text/plain\n\n";
print "mode=$mode\n";
print 'content_length=', (defined $ENV{CONTENT_LENGTH} ? $ENV{CONTENT_LENGTH} : 'undef'), "\n";
print 'length=', length($body), "\n";
print 'md5=', md5_hex($body), "\n";
print 'eof=', (eof(STDIN) ? 1 : 0), "\n";
