#!/usr/bin/perl
# What the script's compile sees of @INC: code refs in it when its first
# BEGIN block runs, and whether its own `use lib` comes first; then the
# same at run time.
use strict;
use warnings;
our ($hooks_at_begin, $first_at_begin);    # package variables: registry keeps them as compiled
BEGIN {
    $hooks_at_begin = grep { ref } @INC;
}
use lib '/nonexistent/fcgi-spawn-check-lib';
BEGIN {
    $first_at_begin = $INC[0];
}
my $hooks_now = grep { ref } @INC;
print "Content-Type: text/plain\n\n";
print "hooks at begin: $hooks_at_begin\n";
print "first after use lib: $first_at_begin\n";
print "hooks at run time: $hooks_now\n";
print "first at run time: $INC[0]\n";
