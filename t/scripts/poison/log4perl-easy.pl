#!/usr/bin/perl
# Log::Log4perl's :easy exports its DEBUG..FATAL into the importing package
# once, and remembers the package: a script compiled into a package it has
# already served would find no DEBUG (a bareword: a syntax error).
use strict;
use warnings;
use Log::Log4perl qw(:easy);

Log::Log4perl->easy_init($ERROR);
print "Content-Type: text/plain\n\n";
DEBUG "not shown";
INFO "not shown";
print "logger level: ", get_logger()->level, "\n";
