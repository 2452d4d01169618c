#!/usr/bin/perl
# A BEGIN block that dies, with a __DIE__ handler that shows the messages
# it gets: the compile is aborted, with no "Execution of ... aborted" line.
use strict;
use warnings;
my $calls = 0;
BEGIN {
    $SIG{__DIE__} = sub { $calls++; print "Content-Type: text/plain\n\n" if $calls == 1; print "die handler got: [$_[0]]\n" };
}
BEGIN { die "begin died\n" }
