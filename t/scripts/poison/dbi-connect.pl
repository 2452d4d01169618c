#!/usr/bin/perl
# Connects to an in-memory SQLite database, writes and reads a table.
use strict;
use warnings;
use DBI;

my $dbh = DBI->connect('dbi:SQLite:dbname=:memory:', '', '', { RaiseError => 1, PrintError => 0 });
$dbh->do('CREATE TABLE t (k TEXT, v INTEGER)');
$dbh->do('INSERT INTO t VALUES (?, ?)', undef, @$_) for ['a', 1], ['b', 2];
my $rows = $dbh->selectall_arrayref('SELECT k, v FROM t ORDER BY k');
print "Content-Type: text/plain\n\n";
print "$_->[0]=$_->[1]\n" for @$rows;
$dbh->disconnect;
