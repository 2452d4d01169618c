#!/usr/bin/perl
# CGI.pm hello world: the smallest real-world script.
use strict;
use warnings;
use CGI;

my $q = CGI->new;
my $name = $q->param('name');
$name = 'world' unless defined $name && length $name;
print $q->header(-type => 'text/html', -charset => 'utf-8');
print '<p>Hello, ', $q->escapeHTML($name), "!</p>\n";
