#!/usr/bin/perl
# Configuration read with do FILE (no package line); the file also defines
# a sub.
use strict;
use warnings;

my $cfg = do "./lib/poison_config.pl" or die "config: $@ $!";
print "Content-Type: text/plain\n\n";
print "colour=$cfg->{colour}\n";
print 'sub says: ', poison_config_sub(), "\n";
