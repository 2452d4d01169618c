#!/usr/bin/perl
# :crlf pushed on STDOUT: every "\n" goes out as "\r\n".
use strict;
use warnings;

binmode STDOUT, ':crlf';
print "Content-Type: text/plain\n\n";
print "crlf line one\ncrlf line two\n";
