#!/usr/bin/perl
# Ties STDOUT to a class that upper-cases the body, and never unties it.
# ?wait=S: first sleeps S seconds (a request that lasts).
use strict;
use warnings;
use POSIX ();

package Poison::Upper;
sub TIEHANDLE { my ($c, $fd) = @_; return bless { fd => $fd }, $c }
sub PRINT {
    my $self = shift;
    my $s = join defined $, ? $, : '', @_;
    $s .= $\ if defined $\;
    POSIX::write($self->{fd}, uc $s, length $s);
    return 1;
}
sub PRINTF { my $self = shift; my $f = shift; return $self->PRINT(sprintf $f, @_) }

package main;
$| = 1;
select undef, undef, undef, $1 if ($ENV{QUERY_STRING} || '') =~ /\bwait=([\d.]+)/;
print "Content-Type: text/plain\n\n";
tie *STDOUT, 'Poison::Upper', POSIX::dup(1);
print "tied and shouting\n";
