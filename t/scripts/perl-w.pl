#!/usr/bin/perl -w
# No "use warnings": the -w on the shebang line must switch them on.
print "Content-Type: text/plain\n\n";
my $x;
my $y = "value:" . $x;
print "done\n";
