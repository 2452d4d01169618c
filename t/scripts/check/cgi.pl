#!/usr/bin/perl
# CGI.pm as a page sees it: header, params, a sticky form with a checkbox
# (.cgifields), its global settings, url.
use strict;
use warnings;
use CGI;

my $q = CGI->new;
print $q->header(-type => 'text/plain', -charset => 'utf-8');
print 'params=', join(',', map { "$_=" . join('|', $q->multi_param($_)) } sort $q->param), "\n";
print 'url=', $q->url(-relative => 1), "\n";
print $q->start_form(-action => 'cgi.pl'), $q->checkbox(-name => 'c', -value => 'on', -label => 'C'),
    $q->textfield(-name => 'name'), $q->end_form, "\n";
{
    no warnings 'once';
    print "POST_MAX=$CGI::POST_MAX DISABLE_UPLOADS=$CGI::DISABLE_UPLOADS NOSTICKY=", ($CGI::NOSTICKY // 'undef'),
        ' XHTML=', ($CGI::XHTML // 'undef'), "\n";
}
print 'escape=', $q->escapeHTML('<a & b>'), "\n";
