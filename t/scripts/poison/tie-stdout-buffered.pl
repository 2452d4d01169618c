#!/usr/bin/perl
# A tie over STDOUT that keeps the whole page and writes it on CLOSE or
# DESTROY, whichever comes first: the page exists only when the handle is
# closed, as process exit closes it.
use strict;
use warnings;
use POSIX ();

package Poison::Buffered;
sub TIEHANDLE { my ($c, $fd) = @_; return bless { fd => $fd, buf => '' }, $c }
sub PRINT { my $self = shift; $self->{buf} .= join '', @_; return 1 }
sub PRINTF { my $self = shift; my $f = shift; $self->{buf} .= sprintf $f, @_; return 1 }
sub CLOSE {
    my ($self) = @_;
    return 1 if $self->{done}++;
    my $s = "$self->{buf}written by the tie\n";
    POSIX::write($self->{fd}, $s, length $s);
    POSIX::close($self->{fd});
    return 1;
}
sub DESTROY { $_[0]->CLOSE }

package main;
tie *STDOUT, 'Poison::Buffered', POSIX::dup(1);
print "Content-Type: text/plain\n\n";
print "buffered page\n";
