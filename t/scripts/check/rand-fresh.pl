#!/usr/bin/perl
# Whether rand gives what the last process of the same parent got: a new
# CGI process seeds rand itself, so never (a fork-mode worker's children
# once all drew their worker's next number). The last number is kept per
# parent process, so the plain-CGI run and the daemon keep theirs apart.
use strict;
use warnings;

my $r = int rand 1e9;
my $file = ($ENV{TMPDIR} || '/tmp') . '/fcgi-spawn-check-rand-' . getppid;
my $last = '';
if (open my $in, '<', $file) { $last = <$in> // '' }
open my $out, '>', $file or die "cannot write $file: $!";
print {$out} $r;
close $out;
print "Content-Type: text/plain\n\nrand: ", ($last eq $r ? "the last request's" : 'its own'), "\n";
