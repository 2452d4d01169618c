#!/usr/bin/perl
# Sleeps without output: --request-timeout must answer 504 and stop it.
use strict;
use warnings;
sub nap { sleep 1 for 1 .. 20 }
nap();
print "Content-Type: text/plain\n\nwoke up\n";
print STDERR "timeout-sleeper finished\n";
