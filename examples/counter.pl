#!/usr/bin/perl
# A classic CGI pitfall: a global counter. Under plain CGI every hit is a new
# process, so it always shows 1. A naive persistent runner would count up;
# fcgi-spawn runs each request in a fresh package, so it stays at 1 while the
# worker pid stays the same.
use strict;
use warnings;
use CGI;

our $hits;
$hits++;
my $q = CGI->new;
print $q->header(-type => 'text/html', -charset => 'utf-8');
print <<"HTML";
<!DOCTYPE html>
<html><head><title>Counter</title></head><body>
<h1>Counter</h1>
<p>This script has been run <strong id="hits">$hits</strong> time(s) in this interpreter
(process $$). Reload: it stays at 1.</p>
<p><a href="index.cgi">Back</a></p>
</body></html>
HTML
