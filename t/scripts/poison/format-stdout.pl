#!/usr/bin/perl
# A report through the default formats STDOUT_TOP and STDOUT: a new process
# prints the top of page before the first line.
use strict;
use warnings;
our ($item, $n);

format STDOUT_TOP =
Item       Count
---------- -----
.
format STDOUT =
@<<<<<<<<< @>>>>
$item,     $n
.

print "Content-Type: text/plain\n\n";
for (['one', 1], ['two', 2], ['three', 3]) {
    ($item, $n) = @$_;
    write;
}
