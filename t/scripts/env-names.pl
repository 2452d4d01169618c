#!/usr/bin/perl
# The names in %ENV, and the names a child process gets in its environment.
use strict;
use warnings;
print "Content-Type: text/plain\n\n";
print 'perl ', join(',', sort keys %ENV), "\n";
# No shell between: a shell would add PWD and SHLVL of its own.
my @child = map { /^([^=]+)=/ ? $1 : () } split /\n/, qx{/usr/bin/env};
print 'child ', join(',', sort @child), "\n";
