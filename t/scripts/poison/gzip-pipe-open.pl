#!/usr/bin/perl
# The same through `| gzip -c`, but the pipe is left open and selected:
# process exit closes it (flushing), so CGI gets the whole gzip stream.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\nContent-Encoding: gzip\n\n";
open my $gz, '|-', 'gzip', '-c', '-n' or die "gzip: $!";
select $gz;
print "line $_ of a gzipped page, pipe left open\n" for 1 .. 50;
