#!/usr/bin/perl
# Requires and does files under the same relative names as the poisoners,
# but from its own directory: each must load its own file.
use strict;
use warnings;
our $poison_nopkg_var;
require "./lib/poison_nopkg.pl";
my $cfg = do "./lib/poison_config.pl" or die "config: $@ $!";

print "Content-Type: text/plain\n\n";
print 'sub says: ', poison_nopkg_sub(), "\n";
print "var: $poison_nopkg_var\n";
print "colour=$cfg->{colour}\n";
print 'config sub says: ', poison_config_sub(), "\n";
