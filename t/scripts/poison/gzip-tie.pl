#!/usr/bin/perl
# A gzip handle wrapping \*STDOUT (IO::Compress::Gzip, a tied glob, the
# Compress::Zlib way), selected, the page printed, closed at the end
# (issue 8, seen 3).
use strict;
use warnings;
use IO::Compress::Gzip qw($GzipError);

$| = 1;
print "Content-Type: text/plain\nContent-Encoding: gzip\n\n";
my $gz = IO::Compress::Gzip->new(\*STDOUT, Minimal => 1) or die "gzip: $GzipError";
select $gz;
print "line $_ of a page gzipped in perl\n" for 1 .. 50;
close $gz;
select STDOUT;
