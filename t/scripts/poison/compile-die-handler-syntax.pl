#!/usr/bin/perl
# A syntax error, with a __DIE__ handler (installed before the error) that
# shows the message it gets: perl's message for a program's failed compile.
use strict;
use warnings;
BEGIN {
    $SIG{__DIE__} = sub { print "Content-Type: text/plain\n\ndie handler got: [$_[0]]\n" };
}
my $x = ;
