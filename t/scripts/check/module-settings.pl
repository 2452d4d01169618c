#!/usr/bin/perl
# The settings of modules that keep them in package scalars (Data::Dumper,
# Carp, Text::Wrap), as this process sees them.
use strict;
use warnings;
use Data::Dumper;
use Carp ();
use Text::Wrap ();

my $r = '';
{
    no strict 'refs';
    for my $name (qw(Indent Sortkeys Terse Useqq Purity Deepcopy Quotekeys Pad Varname)) {
        my $value = ${"Data::Dumper::$name"};
        $r .= "Data::Dumper::$name=" . (defined $value ? $value : 'undef') . "\n";
    }
}
$r .= 'Carp::Verbose=' . ($Carp::Verbose || 0) . "\n";
$r .= "Text::Wrap::columns=$Text::Wrap::columns\n";
print "Content-Type: text/plain\n\n", $r;
