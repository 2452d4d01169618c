#!/usr/bin/perl
# Selects its own formats for STDOUT through $~ and $^ and changes $= $- $%;
# the formats live in this script only (issue 8, seen 6: a later write went
# through a format of a deleted sandbox).
use strict;
use warnings;
our ($name, $qty);

format POISON_TOP =
Name       Qty  (page @<)
$%
---------- ----
.
format POISON_LINE =
@<<<<<<<<< @>>>
$name,     $qty
.

print "Content-Type: text/plain\n\n";
$~ = 'POISON_LINE';
$^ = 'POISON_TOP';
$= = 10;
for (['apples', 3], ['pears', 12]) {
    ($name, $qty) = @$_;
    write;
}
$- = 0;
$% = 7;
