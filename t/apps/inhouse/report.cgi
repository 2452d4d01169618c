#!/usr/bin/perl
# Stock report of the in-house application, as text, with perl formats:
# a page header (STDOUT_TOP) with the page number, a line per item, pages
# of $REPORT_LINES lines separated by form feeds, a summary through a second
# format selected with $~, and the totals printed by an END block.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use DBI;

our ($SITE_NAME, $PAGE_SIZE, $CURRENCY, $REPORT_LINES, %CATEGORY_NAMES, @ADMINS);
do './config.pl' or die "config.pl: " . ($@ || $! || 'did not return true');
require 'lib/helpers.pl';

our ($name, $category, $price, $qty, $value);
our ($total_items, $total_value) = (0, 0);
our ($cat_label, $cat_count, $cat_value);

format STDOUT_TOP =
@|||||||||||||||||||||||||||||||||||||||||||||||||| Page @>>
"$SITE_NAME - stock report", $%
Name                   Category            Price   Qty
---------------------- -------------- ---------- -----
.

format STDOUT =
@<<<<<<<<<<<<<<<<<<<<< @<<<<<<<<<<<<< @>>>>>>>>> @>>>>
$name,                 $category,     $price,    $qty
.

format SUMMARY =
  @<<<<<<<<<<<<<<<<<<<<<<<<< @>>>> items @>>>>>>>>>>>>>
  $cat_label,                $cat_count, $cat_value
.

print "Content-Type: text/plain; charset=utf-8\r\n\r\n";
$= = $REPORT_LINES;

my $dbh = DBI->connect('dbi:SQLite:dbname=' . data_dir() . '/app.db', '', '', { RaiseError => 1 });
my $sth = $dbh->prepare('SELECT name, category, price, qty FROM items ORDER BY category, name, id');
$sth->execute;
my %by_cat;
while (my $r = $sth->fetchrow_arrayref) {
    ($name, $category, $price, $qty) = ($r->[0], category_name($r->[1]), money($r->[2]), $r->[3]);
    write;
    $total_items += $r->[3];
    $total_value += $r->[2] * $r->[3];
    $by_cat{ $r->[1] }[0] += $r->[3];
    $by_cat{ $r->[1] }[1] += $r->[2] * $r->[3];
}
$dbh->disconnect;

$~ = 'SUMMARY';
$^L = "\n";
print "\nBy category:\n";
for my $c (sort keys %by_cat) {
    ($cat_label, $cat_count, $cat_value) = (category_name($c), $by_cat{$c}[0], money($by_cat{$c}[1]));
    write;
}

END {
    printf "\nTotal: %d items, stock value %s\n", $total_items, money($total_value);
    print "-- end of report --\n";
}
