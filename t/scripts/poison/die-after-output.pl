#!/usr/bin/perl
# A page half printed (buffered, not flushed), STDERR selected, then die:
# under CGI perl flushes the buffer at exit: the client gets the half page.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
print "first half\n";
select STDERR;
die "poison die after output\n";
