#!/usr/bin/perl
# A complete page, then an END block that changes state and dies.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage before END\n";
END {
    print "END ran\n";
    $, = '+';
    die "poison die in END\n";
}
