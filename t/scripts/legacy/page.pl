#!/usr/bin/perl
# The classic layout of an old CGI site: shared subs in a required .pl file
# and settings read with do FILE, both without a package line.
use strict;
use warnings;
our $site_name;
require "./common.pl";
my $settings = do "./settings.pl" or die "settings: $@ $!";
print page_header();
print greet('visitor'), "\n";
print "colour=$settings->{colour} items=$settings->{items}\n";
print "site=$site_name\n";
