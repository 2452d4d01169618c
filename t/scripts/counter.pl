#!/usr/bin/perl
# Globals, file-scoped lexicals seen by a named sub, and a package declared in
# the script: under CGI each starts from scratch on every hit.
use strict;
use warnings;

our $hits;
$hits++;
my %seen;
sub remember { my ($k) = @_; return ++$seen{$k} }

package Counter::Thing;
my $made = 0;
sub new { $made++; return bless {}, shift }
sub made { $made }

package main;

Counter::Thing->new;
print "Content-Type: text/plain\n\n";
print "hits=$hits\n";
print 'remember=', remember('x'), "\n";
print 'made=', Counter::Thing->made, "\n";
