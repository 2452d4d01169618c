#!/usr/bin/perl
# The benchmark's "typical page": CGI.pm (params, header, HTML helpers),
# POSIX and List::Util, a 200-row HTML table.
use strict;
use warnings;
use CGI;
use POSIX qw(floor strftime);
use List::Util qw(sum max min first);
use Data::Dumper ();

my $q    = CGI->new;
my $rows = $q->param('rows') // 200;
$rows = 200 unless $rows =~ /^\d+$/ && $rows <= 10_000;

my @data = map {
    my $n = $_;
    { id => $n, name => "item-$n", price => ($n * 37 % 1000) / 7,
      qty => $n * 13 % 17, day => strftime('%Y-%m-%d', gmtime(1_700_000_000 + $n * 86_400)) }
} 1 .. $rows;

my $total = sum(map { $_->{price} * $_->{qty} } @data);
my $top   = max(map { $_->{price} } @data);
my $cheap = first { $_->{price} < 10 } @data;

print $q->header(-type => 'text/html', -charset => 'utf-8');
print $q->start_html(-title => 'Inventory'), $q->h1('Inventory');
print $q->p('Rows: ', $rows, '; most expensive: ', sprintf('%.2f', $top),
    '; first cheap item: ', $q->escapeHTML($cheap ? $cheap->{name} : 'none'));
print qq{<table border="1">\n},
    $q->Tr($q->th(["#", qw(Name Price Qty Subtotal Day)])), "\n";
for my $r (@data) {
    print $q->Tr({ -class => $r->{id} % 2 ? 'odd' : 'even' }, $q->td([
        $r->{id}, $q->escapeHTML($r->{name}), sprintf('%.2f', $r->{price}), $r->{qty},
        floor($r->{price} * $r->{qty}), $r->{day},
    ])), "\n";
}
print "</table>\n", $q->p(sprintf 'Total: %.2f', $total);
local $Data::Dumper::Terse = 1;
print "<!-- params: ", $q->escapeHTML(Data::Dumper::Dumper({ rows => $rows })), " -->\n";
print "<!-- page.pl: $rows rows -->\n", $q->end_html, "\n";
