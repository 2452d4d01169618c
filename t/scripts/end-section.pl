#!/usr/bin/perl
# Text after __END__ is readable through DATA, on every request.
use strict;
use warnings;

print "Content-Type: text/plain\n\n";
my @lines = <DATA>;
print 'count=', scalar(@lines), "\n";
print "first=$lines[0]" if @lines;

__END__
after end one
after end two
after end three
