#!/usr/bin/perl
# 5 MiB of every byte value, written the way ?how= says (print in one go,
# many small prints, syswrite, printf); the test checks size and MD5.
use strict;
use warnings;

my ($how) = ($ENV{QUERY_STRING} || '') =~ /how=(\w+)/;
$how ||= 'print';
my $block = join '', map { chr } 0 .. 255;
my $data = $block x (5 * 1024 * 1024 / 256);
binmode STDOUT;
print "Content-Type: application/octet-stream\n";
print 'Content-Length: ', length($data), "\n\n";
if ($how eq 'print') {
    print $data;
}
elsif ($how eq 'chunks') {
    for (my $off = 0; $off < length $data; $off += 1000) {
        print substr($data, $off, 1000);
    }
}
elsif ($how eq 'syswrite') {
    $| = 1;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite STDOUT, $data, 100_000, $off;
        die "syswrite: $!" unless defined $n;
        $off += $n;
    }
}
elsif ($how eq 'printf') {
    printf '%s', substr($data, $_ * 65536, 65536) for 0 .. (length($data) / 65536) - 1;
}
