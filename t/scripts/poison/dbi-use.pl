#!/usr/bin/perl
# Loads DBI and never connects (issue 8, seen 8: the clean-up then deleted
# DBI's DBD:: namespace).
use strict;
use warnings;
use DBI;

print "Content-Type: text/plain\n\nDBI loaded, no connection\n";
