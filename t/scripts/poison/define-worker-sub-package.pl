#!/usr/bin/perl
# Replaces CGI::escapeHTML, a sub of a module the daemon preloads, in its
# own text: a package line. Under CGI the next process starts with CGI.pm's
# own sub (t/58 runs worker-sub-ways.pl next to see it).
use strict;
use warnings;
use CGI ();
no warnings 'redefine';

print "Content-Type: text/plain\n\n", 'escapeHTML: ', CGI::escapeHTML('<&>'), "\n";

package CGI;
sub escapeHTML { return "poisoned" }
package main;
