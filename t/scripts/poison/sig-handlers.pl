#!/usr/bin/perl
# Signal dispositions and perl's hooks set and left: a handler, IGNOREs,
# CHLD ignored (system's $? changes), a __WARN__ hook printing to STDOUT.
use strict;
use warnings;

$SIG{USR1} = sub { print "usr1\n" };
$SIG{HUP}  = 'IGNORE';
$SIG{INT}  = 'IGNORE';
$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = 'IGNORE';
$SIG{__WARN__} = sub { print STDOUT "warn hook: $_[0]" };
print "Content-Type: text/plain\n\nsignals set\n";
