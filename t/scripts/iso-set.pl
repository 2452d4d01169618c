#!/usr/bin/perl
# Changes every piece of interpreter state a legacy CGI script may change,
# assuming the process dies afterwards. t/40-isolation.t checks, with
# iso-check.pl run next in the same worker, that none of it survived.
use strict;
use warnings;
no warnings qw(once);
use lib '/nonexistent/iso-leak-lib';

our $our_global = 'leaked';
$main::main_global = 'leaked';
$Leaky::Pkg::var = 'leaked';
sub Leaky::Pkg::leaked_sub { 'leaked' }
$ENV{ISO_LEAK} = 'leaked';
$ENV{PATH} = '/nonexistent';
delete $ENV{HOME};
$0 = 'iso-set-changed-$0';
umask 0077;
$SIG{USR2} = 'IGNORE';
$SIG{ALRM} = sub { die "alarm\n" };
$SIG{__WARN__} = sub { print STDOUT "leaked warn handler: @_" };
open our $LEFT_OPEN, '<', '/dev/null' or die;

print "Content-Type: text/plain; charset=utf-8\n\n";
binmode STDOUT, ':encoding(UTF-8)';
print "set \x{263a}\n";
chdir '/' or die "chdir: $!";

# The output-affecting ones go last, after the page.
$/ = 'X';
$, = '-';
$\ = "\n";
$| = 1;
open my $null, '>', '/dev/null' or die;
select $null;
$| = 0;
