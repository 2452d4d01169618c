#!/usr/bin/perl
# Leaves $^R (the result of a regex's last (?{ }) block), $@ and $? set.
use strict;
use warnings;

'x' =~ /x(?{ 42 })/;
eval { die "caught\n" };
system 'exit 3';
print "Content-Type: text/plain\n\n", "regex code result: $^R\n";
