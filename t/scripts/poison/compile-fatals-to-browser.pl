#!/usr/bin/perl
# A compile error under CGI::Carp's fatalsToBrowser: the browser gets
# perl's whole message, "Execution of ... aborted due to compilation
# errors." included (found with mod_perl's Registry test of the same).
use strict;
use warnings;
use CGI::Carp qw(fatalsToBrowser);

print "Content-type: text/plain\n\n";
$undeclared_in_fatals_to_browser = 1;
print "not reached\n";
