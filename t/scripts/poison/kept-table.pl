#!/usr/bin/perl
# Requires a plain file of lookup tables at run time, as AWStats does, then
# writes into them: every run must find them as loaded, as a new process
# does (registry keeps the file loaded and puts the tables back).
use strict;
use warnings;
use FindBin;
our (%Colour, @Order, $Count);
require "$FindBin::Bin/lib/kept_table.pl";

my $as_loaded = join ',', map { "$_=$Colour{$_}" } @Order;
$Colour{red} = 'changed';
delete $Colour{green};
push @Order, 'extra';
$Colour{extra} = 'new';
$Count++;
@Order = reverse @Order if ($ENV{QUERY_STRING} // '') eq 'reverse';
print "Content-Type: text/plain\n\nas loaded: $as_loaded; count $Count; order now @Order\n";
