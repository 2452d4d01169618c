#!/usr/bin/perl
# $^T is the time the process started, a moment before the script: -M, -A
# and -C count file ages from it (a file written just now is not "in the
# future" by the age of a long-running process).
use strict;
use warnings;

my $age = time - $^T;
print "Content-Type: text/plain\n\n",
    '$^T: ', ($age >= 0 && $age <= 2 ? 'the script start' : "$age s before the script"), "\n",
    '-M of a file written now: ', do {
        my $file = ($ENV{TMPDIR} || '/tmp') . "/fcgi-spawn-basetime-$$";
        open my $fh, '>', $file or die "cannot write $file: $!";
        close $fh;
        my $m = -M $file;
        unlink $file;
        $m > -2 / 86400 ? 'not in the future' : sprintf('%.0f s in the future', -$m * 86400);
    }, "\n";
