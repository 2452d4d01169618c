#!/usr/bin/perl
# FCGI's own interface, as scripts written for it use it: under CGI the
# first Accept returns 0 and the next -1, so the body runs once.
use strict;
use warnings;
use FCGI;

my $request = FCGI::Request();
my $n = 0;
while ($request->Accept() >= 0) {
    $n++;
    print "Content-Type: text/plain\n\nn=$n fastcgi=", ($request->IsFastCGI ? 1 : 0),
        " query=", ($ENV{QUERY_STRING} // ''), "\n";
}
print "accepted $n\n";
