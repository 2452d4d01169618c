#!/usr/bin/perl
# Globals of every kind: our, use vars, $main::, $::, a sub defined into
# main, a glob-assigned sub, a declared package, an autovivified one, $_,
# @ARGV, $0, $^W.
use strict;
use warnings;
no warnings 'once';
use vars qw($poison_use_vars @poison_use_vars_list);

our $poison_our = 'leaked';
$poison_use_vars = 'leaked';
@poison_use_vars_list = ('leaked');
$main::poison_main = 'leaked';
$::poison_colon = 'leaked';
%main::poison_hash = (k => 'leaked');
sub main::poison_defined_sub { 'leaked' }
*main::poison_glob_sub = sub { 'leaked' };
$PoisonAuto::var = 'leaked';
$_ = 'leaked';
@ARGV = ('leaked');
$0 = 'poison-set-dollar0';
$^W = 1;

package PoisonDeclared;
our $var = 'leaked';
sub declared { 'leaked' }

package main;
print "Content-Type: text/plain\n\nglobals set\n";
