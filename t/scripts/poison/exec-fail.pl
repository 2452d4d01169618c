#!/usr/bin/perl
# exec of a program that does not exist returns, and the script goes on.
use strict;
use warnings;
no warnings 'exec';

print "Content-Type: text/plain\n\n";
my $ok = exec '/nonexistent/poison-program';
print 'exec returned: ', ($ok ? 'true' : 'false'), " ($!)\n";
