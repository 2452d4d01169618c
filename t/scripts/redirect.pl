#!/usr/bin/perl
use strict;
use warnings;
use CGI;

my $q = CGI->new;
print $q->redirect(-uri => '/hello.pl?name=redirected', -status => '302 Found');
