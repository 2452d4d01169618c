#!/usr/bin/perl
# Leaves a handle selected that it then closes.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage\n";
open my $fh, '>', '/dev/null' or die "/dev/null: $!";
select $fh;
close $fh;
{
    no warnings 'closed';
    print "to a closed handle\n";
}
