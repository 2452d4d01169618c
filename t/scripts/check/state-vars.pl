#!/usr/bin/perl
# `state` variables: set up once per process under CGI, so every request
# starts them afresh (file scope, a named sub, without an initialiser,
# arrays and hashes, an object whose DESTROY says when it goes).
use strict;
use warnings;
use feature 'state';

package Counted {
    our $alive = 0;
    sub new { $alive++; return bless {}, shift }
    sub alive { return $alive }
    sub DESTROY { $alive-- }
}

sub next_id {
    state $id = 100;
    return ++$id;
}

state $runs = 0;
state $bare;
state @seen;
state %count;
state $object = Counted->new;
$runs++;
$bare .= 'x';
push @seen, 'run';
$count{run}++;
my @ids = (next_id(), next_id());
print "Content-Type: text/plain\n\n";
print "runs: $runs\n";
print "bare: $bare\n";
print "seen: @seen\n";
print "count: $count{run}\n";
print "ids: @ids\n";
print "objects alive: ", Counted::alive(), "\n";
