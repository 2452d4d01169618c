#!/usr/bin/perl
# DBI with DBD::SQLite (in memory): connect, write, read.
use strict;
use warnings;
use DBI;

my $dbh = DBI->connect('dbi:SQLite:dbname=:memory:', '', '', { RaiseError => 1, PrintError => 0 });
$dbh->do('CREATE TABLE c (n INTEGER)');
$dbh->do('INSERT INTO c VALUES (?)', undef, $_) for 1 .. 3;
my ($sum) = $dbh->selectrow_array('SELECT SUM(n) FROM c');
print "Content-Type: text/plain\n\nsum=$sum\n";
$dbh->disconnect;
