#!/usr/bin/perl
# Front page of the examples: links to the others, and the process that
# answered (one after another, requests often meet the same idle worker;
# the others take the requests that come while it is busy).
use strict;
use warnings;
use CGI;

my $q = CGI->new;
my @pages = (
    [ 'form.pl',    'A form posted back to itself, fields echoed (HTML-escaped)' ],
    [ 'upload.pl',  'File upload: size and MD5 of what you sent' ],
    [ 'env.pl',     'The CGI environment of this request' ],
    [ 'counter.pl', 'A global counter that a persistent process would keep, but does not' ],
);
print $q->header(-type => 'text/html', -charset => 'utf-8');
print <<'HTML';
<!DOCTYPE html>
<html><head><title>fcgi-spawn examples</title></head><body>
<h1>fcgi-spawn examples</h1>
<p>Plain CGI scripts using CGI.pm. They run unchanged under any CGI server
and, persistently, under fcgi-spawn.</p>
<ul>
HTML
for my $p (@pages) {
    printf qq{<li><a href="%s">%s</a> &mdash; %s</li>\n}, $q->escapeHTML($p->[0]), $q->escapeHTML($p->[0]), $q->escapeHTML($p->[1]);
}
printf "</ul>\n<p><small>Served by process %d (%s).</small></p>\n</body></html>\n",
    $$, $q->escapeHTML($ENV{SERVER_SOFTWARE} || 'unknown server');
