#!/usr/bin/perl
# Objects held in every place a script keeps things, each saying when it
# goes: under CGI all go at the process's exit (global destruction runs
# their DESTROY, which prints), after the page. So must they in a `fork`
# request's child, and in a registry script that runs in a child per
# request (its named sub keeps a file lexical).
use strict;
use warnings;
use feature 'state';

# A sub of the worker's (t/scripts/check/lib/keeper.pl, when preloaded)
# imported here: what it keeps is not the script's.
BEGIN { no strict 'refs'; *{ __PACKAGE__ . '::kept' } = \&Keeper::kept if defined &Keeper::kept }
# A glob sharing STDOUT's: STDOUT stays open for the DESTROY lines.
*OUT = *STDOUT;

package Noisy {
    sub new { my ($class, $name) = @_; return bless { name => $name }, $class }
    sub DESTROY { print "destroyed: $_[0]{name}\n" }
}

package Other {
    our $held = Noisy->new('in a package the script declares');
}

our $scalar = Noisy->new('in a package scalar');
our @array = (Noisy->new('in a package array'));
our %nested = (list => [ Noisy->new('nested in a package hash') ]);
our $callback = do { my $inner = Noisy->new('held by a closure'); sub { $inner } };
$main::global = $main::global = Noisy->new('in a main:: name');

use FindBin;
require "$FindBin::Bin/lib/held.pl";

my $captured = Noisy->new('in a file lexical a named sub keeps');
sub captured { return $captured }

sub kept_in_state { state $kept = Noisy->new('in a state variable'); return $kept }
kept_in_state();

our $early;
my $early_lexical;
BEGIN {
    $early = Noisy->new('in a package scalar set at compile time');
    $early_lexical = Noisy->new('in a file lexical set at compile time');
}

print OUT "Content-Type: text/plain\n\n";
my $gone = Noisy->new('in a file lexical, while the script runs');
undef $gone;
print "page: ", join(', ', map { $_->{name} } captured(), kept_in_state(), $callback->(), $early_lexical), "\n";
