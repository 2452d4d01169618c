#!/usr/bin/perl
# Redefines CGI::header, a sub of a module the daemon may have preloaded:
# harmless under CGI (the process ends), a leak if it outlives the request.
use strict;
use warnings;
use CGI;

{
    no warnings 'redefine';
    *CGI::header = sub { return "Content-Type: text/x-poisoned\r\n\r\n" };
}
my $q = CGI->new;
print $q->header('text/plain');
print "header redefined\n";
