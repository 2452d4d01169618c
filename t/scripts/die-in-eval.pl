#!/usr/bin/perl
# die inside eval is an ordinary exception and must stay catchable, also
# with a $SIG{__DIE__} handler installed by the script.
use strict;
use warnings;

my $handler_saw = '';
local $SIG{__DIE__} = sub { $handler_saw = $_[0] };
my $ok = eval { die "caught-marker\n"; 1 };
print "Content-Type: text/plain\n\n";
print 'eval returned: ', ($ok ? 'true' : 'false'), "\n";
print "error: $@";
print "handler saw: $handler_saw";
