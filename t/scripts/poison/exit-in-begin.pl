#!/usr/bin/perl
# The whole page from BEGIN, then exit during compilation.
use strict;
use warnings;

BEGIN {
    print "Content-Type: text/plain\n\npage from BEGIN\n";
    exit 0;
}
print "not reached\n";
