#!/usr/bin/perl
# require of a script-relative library without a package line, the awstats
# way (issue 8, seen 2): its subs and globals land in the script's main.
use strict;
use warnings;
our $poison_nopkg_var;
require "./lib/poison_nopkg.pl";

print "Content-Type: text/plain\n\n";
print 'sub says: ', poison_nopkg_sub(), "\n";
print "var: $poison_nopkg_var\n";
