#!/usr/bin/perl
# The script points STDOUT elsewhere for a while and back, the way code
# capturing output by hand does; what it prints afterwards reaches the client.
use strict;
use warnings;
use File::Temp ();

print "Content-Type: text/plain\n\n";
print "1 before\n";
open my $saved, '>&', \*STDOUT or die "dup STDOUT: $!";
my $tmp = File::Temp->new;
open STDOUT, '>', $tmp->filename or die "reopen STDOUT: $!";
print "to the file\n";
system 'echo child to the file';
close STDOUT;
open STDOUT, '>&', $saved or die "restore STDOUT: $!";
print "2 after restore\n";
print "3 file had: ", do { open my $in, '<', $tmp->filename or die; local $/; <$in> };
