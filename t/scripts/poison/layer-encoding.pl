#!/usr/bin/perl
# :encoding(UTF-8) pushed on STDOUT and left there.
use strict;
use warnings;

binmode STDOUT, ':encoding(UTF-8)';
print "Content-Type: text/plain; charset=utf-8\n\n";
print "snowman \x{2603} e-acute \x{e9}\n";
