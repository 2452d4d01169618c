#!/usr/bin/perl
# A child left running in the background with the script's stdout: as with
# CGI, the response ends when it closes stdout, not when the script ends.
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain\n\n";
print "script start\n";
system 'sh', '-c', '(sleep 0.6; echo background child done) &';
print "script end\n";
