#!/usr/bin/perl
# DESTROY that dies: once at scope exit, once in global destruction.
use strict;
use warnings;

package Poison::Dies;
sub new { my ($c, $n) = @_; return bless { n => $n }, $c }
sub DESTROY { print "DESTROY $_[0]{n}\n"; die "poison die in DESTROY $_[0]{n}\n" }

package main;
our $kept = Poison::Dies->new('global');
print "Content-Type: text/plain\n\n";
{
    my $obj = Poison::Dies->new('scoped');
}
print "after scope\n";
