#!/usr/bin/perl
# Prints its headers, then execs a program that writes the body (wrapper
# scripts do this; issue 8, seen 7). perl flushes STDOUT before exec.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
print "before exec\n";
exec 'sh', '-c', 'echo "from the exec-ed program"; exit 0' or die "exec: $!";
