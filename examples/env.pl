#!/usr/bin/perl
# The CGI environment of this request, HTML-escaped.
use strict;
use warnings;
use CGI;
use Cwd qw(getcwd);

my $q = CGI->new;
print $q->header(-type => 'text/html', -charset => 'utf-8');
print "<!DOCTYPE html>\n<html><head><title>Environment</title></head><body>\n<h1>Environment</h1>\n<table>\n";
for my $k (sort keys %ENV) {
    printf "<tr><th align=\"left\">%s</th><td>%s</td></tr>\n", $q->escapeHTML($k), $q->escapeHTML($ENV{$k});
}
printf "</table>\n<p>pid %d, user %s, \$0 = %s, cwd = %s</p>\n", $$, $q->escapeHTML(scalar(getpwuid $<) // $<),
    $q->escapeHTML($0), $q->escapeHTML(getcwd());
print qq{<p><a href="index.cgi">Back</a></p>\n</body></html>\n};
