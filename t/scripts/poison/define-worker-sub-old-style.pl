#!/usr/bin/perl
# Replaces CGI::escapeHTML, a sub of a module the daemon preloads, in its
# own text: a sub named with the old package separator (CGI'escapeHTML). Under CGI the next process starts with CGI.pm's
# own sub (t/58 runs worker-sub-ways.pl next to see it).
use strict;
use warnings;
use CGI ();
no warnings 'redefine';

print "Content-Type: text/plain\n\n", 'escapeHTML: ', CGI::escapeHTML('<&>'), "\n";

sub CGI'escapeHTML { return "poisoned" }
