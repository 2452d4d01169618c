#!/usr/bin/perl
# Child processes: an exit code through system, backticks, a child writing
# to the page, and writes to STDERR (which must not reach the page).
use strict;
use warnings;

$| = 1;
print STDOUT "Content-Type: text/plain\n\n";
system 'sh', '-c', 'exit 3';
print STDOUT 'system exit code=', $? >> 8, ' (status ', $?, ")\n";
my $out = `echo from backticks`;
print STDOUT 'backticks=', $out;
system 'echo from a child on stdout';
print STDERR "checker stderr line\n";
warn "checker warning\n";
system 'sh', '-c', 'echo child stderr line >&2';
print STDOUT "done\n";
