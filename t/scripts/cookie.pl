#!/usr/bin/perl
# Sets a cookie and echoes back the one the client sent.
use strict;
use warnings;
use CGI;

my $q = CGI->new;
my $got = $q->cookie('flavour');
my $c = $q->cookie(-name => 'flavour', -value => 'oatmeal', -path => '/');
print $q->header(-type => 'text/plain', -cookie => $c);
print 'got=', (defined $got ? $got : 'none'), "\n";
