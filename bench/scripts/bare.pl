#!/usr/bin/perl
# The machinery alone: a page without CGI.pm, so what a request costs
# around the script shows.
print "Content-Type: text/plain\r\n\r\nbare\n";
