#!/usr/bin/perl
# Kills its own process (the worker) the hard way.
use strict;
use warnings;
use POSIX ();

my ($how) = ($ENV{QUERY_STRING} || '') =~ /how=(\w+)/;
$how ||= 'kill';
if ($how eq 'kill') { kill 'KILL', $$ }
elsif ($how eq 'exit') { POSIX::_exit(7) }
elsif ($how eq 'afteroutput') {
    $| = 1;
    print "Content-Type: text/plain\n\nhalf a page\n";
    kill 'KILL', $$;
}
sleep 5;
print "Content-Type: text/plain\n\nstill alive?\n";
