#!/usr/bin/perl
# @INC without perl's own library directories (those of %Config and the ones
# Debian's perl adds), the number of code refs in it, and the %INC entries
# a poisoner may have left (names with "poison", script-relative paths).
use strict;
use warnings;
use Config;

my %system = map { defined $_ && length $_ ? ($_ => 1) : () }
    @Config{qw(privlibexp archlibexp sitelibexp sitearchexp vendorlibexp vendorarchexp)},
    '/etc/perl', '/usr/local/lib/site_perl';
my @dirs = grep { !ref && !$system{$_} && !m{/perl-base\z} } @INC;
my $r = 'inc=' . join(' ', @dirs) . "\n";
$r .= 'inc_hooks_after_the_first=' . (grep { ref } @INC[1 .. $#INC]) . "\n";
$r .= 'inc_entries=' . join(' ', sort grep { /poison/i || m{^\.?\.?/} } keys %INC) . "\n";
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
