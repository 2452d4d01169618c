#!/usr/bin/perl
# STDIN/STDOUT/STDERR must be real fds 0/1/2: child processes write to the
# client directly, in order with the script's own (buffered!) prints.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
print "1 perl\n";
system 'echo 2 system';
print "3 perl\n";
print `echo 4 backticks`;
open my $from, '-|', 'echo', '5 pipe-from' or die "open -|: $!";
print <$from>;
close $from;
print "6 perl\n";
open my $to, '|-', 'cat' or die "open |-: $!";
print {$to} "7 pipe-to-cat\n";
close $to;
system 'sh', '-c', 'printf "8 sh printf\n"; echo fds-stderr-marker >&2';
print 'fileno=', join(',', fileno(STDIN), fileno(STDOUT), fileno(STDERR)), "\n";
print 'tty=', (-t STDOUT ? 1 : 0), "\n";
print "9 perl last\n";
