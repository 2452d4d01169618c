#!/usr/bin/perl
# Sets the settings modules keep in package scalars, for itself, as a CGI
# script may: the next script must see the modules' defaults.
use strict;
use warnings;
use Data::Dumper;
use Carp ();
use Text::Wrap ();

$Data::Dumper::Indent   = 0;
$Data::Dumper::Sortkeys = 1;
$Data::Dumper::Terse    = 1;
$Carp::Verbose          = 1;
$Text::Wrap::columns    = 20;
print "Content-Type: text/plain\n\n", Dumper({ b => 2, a => 1 }), "\n";
