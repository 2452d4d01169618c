#!/usr/bin/perl
# Leaves a lexical handle on /dev/null selected.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage\n";
open my $null, '>', '/dev/null' or die "/dev/null: $!";
select $null;
print "to /dev/null\n";
