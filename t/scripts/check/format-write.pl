#!/usr/bin/perl
# A report through STDOUT_TOP and STDOUT: a new process prints the top of
# page first, then three lines.
use strict;
use warnings;
our ($what, $count);

format STDOUT_TOP =
Checked    Count
---------- -----
.
format STDOUT =
@<<<<<<<<< @>>>>
$what,     $count
.

print "Content-Type: text/plain\n\n";
for (['alpha', 10], ['beta', 20], ['gamma', 30]) {
    ($what, $count) = @$_;
    write;
}
