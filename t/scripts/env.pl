#!/usr/bin/perl
# Dumps %ENV, @ARGV, $0, cwd and __FILE__ as NAME=VALUE lines.
use strict;
use warnings;
use Cwd qw(getcwd);

print "Content-Type: text/plain\n\n";
for my $k (sort keys %ENV) {
    my $v = $ENV{$k};
    $v =~ s/\n/\\n/g;
    print "ENV:$k=$v\n";
}
print 'ARGV=', join('|', @ARGV), "\n";
print "ARGC=", scalar(@ARGV), "\n";
print "0=$0\n";
print 'CWD=', getcwd(), "\n";
print 'FILE=', __FILE__, "\n";
