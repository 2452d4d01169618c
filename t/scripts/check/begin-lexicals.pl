#!/usr/bin/perl
# File lexicals a BEGIN block sets (the `use lib` idiom: the directory
# worked out at compile time, used again at run time), then changed by the
# run: every run starts from what the compile left, as every CGI process
# does.
use strict;
use warnings;
my $dir;
BEGIN { ($dir = __FILE__) =~ s{/[^/]*\z}{} }
use lib $dir;
my @seen;
BEGIN { @seen = ('compile') }
my %config;
BEGIN { %config = (colour => 'blue', size => 3) }
my $never_set;
push @seen, 'run';
$config{size}++;
print "Content-Type: text/plain\n\n";
print "dir ends in check: ", ($dir =~ m{/check\z} ? 'yes' : 'no'), "\n";
print "seen: @seen\n";
print "config: ", join(', ', map { "$_=$config{$_}" } sort keys %config), "\n";
print "never set: ", (defined $never_set ? 'defined' : 'undef'), "\n";
$never_set = 'set by the run';
