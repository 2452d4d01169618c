#!/usr/bin/perl
# Perl's buffered prints, syswrite, autoflush, system and POSIX::write mixed:
# the client must get the bytes in the order a plain CGI perl puts them on
# its stdout (syswrite bypasses the buffer: it comes before earlier prints).
use strict;
use warnings;
use POSIX ();

print "Content-Type: text/plain\n\n";
print "1 print, buffered\n";
syswrite STDOUT, "2 syswrite\n";
print "3 print\n";
system 'echo 4 system';
POSIX::write(1, "5 POSIX::write\n", 15);
print "6 print\n";
{
    local $| = 1;
    print "7 autoflushed\n";
    POSIX::write(1, "8 POSIX::write after flush\n", 27);
}
printf "%s\n", '9 printf';
# Past the layer's 64 KiB streaming point, with a child in between.
print "x" x 99, "\n" for 1 .. 1000;
system 'echo 10 system after 100 KB';
print "11 print last\n";
