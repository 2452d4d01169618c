#!/usr/bin/perl
# Which globals, subs and packages a poisoner may have left exist: names in
# %main:: containing "poison" (looked up in the stash, never by name in the
# code, which would create them), with the slots they hold, and packages
# whose name starts with "Poison".
use strict;
use warnings;

sub slots {
    my ($stash, $name) = @_;
    my $g = $stash->{$name};
    return 'stub' unless ref \$g eq 'GLOB';
    my @s;
    push @s, 'scalar=' . ${ *{$g}{SCALAR} } if defined ${ *{$g}{SCALAR} };
    push @s, 'array=' . join(',', @{ *{$g}{ARRAY} }) if *{$g}{ARRAY} && @{ *{$g}{ARRAY} };
    push @s, 'hash=' . join(',', map { "$_" } sort keys %{ *{$g}{HASH} }) if *{$g}{HASH} && %{ *{$g}{HASH} };
    push @s, 'code' if defined *{$g}{CODE};
    return join(' ', @s) || 'empty';
}
my $r = '';
for my $name (sort grep { /poison/i && !/::\z/ } keys %main::) {
    $r .= "main::$name " . slots(\%main::, $name) . "\n";
}
for my $pkg (sort grep { /^Poison.*::\z/ } keys %main::) {
    no strict 'refs';
    my $stash = \%{"main::$pkg"};
    $r .= "package $pkg " . join(' ', map { "$_(" . slots($stash, $_) . ')' } sort grep { !/::\z/ } keys %$stash) . "\n";
}
$r = "none\n" unless length $r;
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
