#!/usr/bin/perl
# Writes to STDERR three ways; every line must reach the daemon log tagged
# with the worker pid and the script path.
use strict;
use warnings;

print STDERR "stderr-print-marker\n";
warn "warn-marker\n";
system 'echo stderr-child-marker >&2';
print "Content-Type: text/plain\n\nok\n";
