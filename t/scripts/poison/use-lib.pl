#!/usr/bin/perl
# @INC grown three ways (use lib, push, an @INC hook) and a fake %INC entry.
use strict;
use warnings;
use lib '/nonexistent/poison-use-lib';

push @INC, '/nonexistent/poison-push';
unshift @INC, sub { return };
$INC{'PoisonFake.pm'} = '/nonexistent/PoisonFake.pm';
print "Content-Type: text/plain\n\n@INC[1 .. 1]\n";
