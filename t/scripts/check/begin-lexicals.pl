#!/usr/bin/perl
# File lexicals a BEGIN block sets (the `use lib` idiom: the directory
# worked out at compile time, used again at run time), then changed by the
# run: every run starts from what the compile left, as every CGI process
# does. Arrays with holes in them too.
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
# Arrays with holes, as a BEGIN block left them: a package one and a lexical.
our @sparse;
BEGIN { $sparse[2] = 'c' }
my @lexical_sparse;
BEGIN { $lexical_sparse[1] = 'b' }
push @seen, 'run';
$config{size}++;
print "Content-Type: text/plain\n\n";
print "dir ends in check: ", ($dir =~ m{/check\z} ? 'yes' : 'no'), "\n";
print "seen: @seen\n";
print "config: ", join(', ', map { "$_=$config{$_}" } sort keys %config), "\n";
print "never set: ", (defined $never_set ? 'defined' : 'undef'), "\n";
print "sparse: ", join(',', map { $_ // '-' } @sparse), "; ", join(',', map { $_ // '-' } @lexical_sparse), "\n";
push @sparse, 'run';
$never_set = 'set by the run';
