#!/usr/bin/perl
# The benchmark's large response: 5 MiB of text in 1 KiB lines.
use strict;
use warnings;
use CGI;
my $q    = CGI->new;
my $line = ('0123456789abcdef' x 63) . "0123456789abcde\n";    # 1024 bytes
print $q->header('text/plain');
print $line for 1 .. 5119;
print sprintf("%-1023s\n", "output.pl: 5242880 bytes");
