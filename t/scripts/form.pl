#!/usr/bin/perl
# CGI.pm parameter echo: one "name=value" line per value, sorted.
use strict;
use warnings;
use CGI;

my $q = CGI->new;
print $q->header('text/plain');
print 'method=', $q->request_method, "\n";
for my $name (sort $q->param) {
    print "$name=$_\n" for $q->multi_param($name);
}
