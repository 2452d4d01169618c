#!/usr/bin/perl
# The whole %ENV, sorted.
use strict;
use warnings;

my $r = '';
for my $k (sort keys %ENV) {
    (my $v = $ENV{$k}) =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    $r .= "$k=$v\n";
}
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
