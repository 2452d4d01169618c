#!/usr/bin/perl
# The benchmark's hello world: CGI.pm, one param, plain text.
use strict;
use warnings;
use CGI;
my $q = CGI->new;
print $q->header('text/plain'), "Hello, ", ($q->param('name') // 'world'), "\n";
