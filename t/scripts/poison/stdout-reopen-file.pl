#!/usr/bin/perl
# A complete page, then STDOUT re-opened to /dev/null and left so.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage, then STDOUT to /dev/null\n";
open STDOUT, '>', '/dev/null' or die "reopen: $!";
print "to /dev/null\n";
