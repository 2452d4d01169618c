#!/usr/bin/perl
# An END block that sets the exit status.
use strict;
use warnings;

print "Content-Type: text/plain\n\npage\n";
END { $? = 4 }
