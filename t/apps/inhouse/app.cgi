#!/usr/bin/perl
# Acme Parts Inventory: the in-house application of the differential suite,
# written the way such sites were: one script, CGI.pm, CGI::Session cookies,
# HTML::Template (cached), DBI over SQLite, a config file read with do,
# helpers required from a file without a package line, package globals, a
# hit counter, an END block. Its data directory comes from the server
# (APP_DATA), so each side of a comparison has its own copy.
#
# Two patterns the issue names on purpose (they are how such code is
# written): `our $USER` is set only when the session has a login, and the
# CSV export's preamble is a named sub reading a file-scoped `my`.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use CGI;
use CGI::Session;
use DBI;
use Digest::SHA qw(sha1_hex);
use HTML::Template;

our ($SITE_NAME, $PAGE_SIZE, $CURRENCY, $REPORT_LINES, %CATEGORY_NAMES, @ADMINS);
do './config.pl' or die "config.pl: " . ($@ || $! || 'did not return true');
require 'lib/helpers.pl';

our $USER;             # set only when logged in
our $HITS;             # page views, from the counter table
our @MESSAGES;         # notes for the page being built
my $exported_by;       # read by csv_preamble(), a named sub

my $q   = CGI->new;
my $dbh = db_connect();
my $session = CGI::Session->load('driver:file', $q, { Directory => data_dir() . '/sessions' })
    or die CGI::Session->errstr;
if (!$session->is_empty && $session->param('login')) {
    $USER = $session->param('login');
}

$dbh->do('UPDATE counter SET n = n + 1');
($HITS) = $dbh->selectrow_array('SELECT n FROM counter');

my $action = $q->param('action') || 'list';
my %dispatch = (
    list       => \&do_list,
    search     => \&do_list,
    view       => \&do_view,
    login_form => \&do_login_form,
    login      => \&do_login,
    logout     => \&do_logout,
    add_form   => \&do_add_form,
    add        => \&do_add,
    edit       => \&do_edit,
    export     => \&do_export,
    whoami     => \&do_whoami,
);
my $handler = $dispatch{$action};
if (!$handler) {
    print $q->header(-status => '400 Bad Request', -type => 'text/plain', -charset => 'utf-8');
    print "Unknown action\n";
    exit 0;
}
$handler->();
exit 0;

sub render {
    my (%a) = @_;
    my $page = HTML::Template->new(filename => "$FindBin::Bin/templates/page.tmpl",
        cache => 1, die_on_bad_params => 0);
    my ($count) = $dbh->selectrow_array('SELECT COUNT(*) FROM items');
    $page->param(site => $SITE_NAME, title => $a{title}, body => $a{body}, user => $USER,
        message => join(' ', @MESSAGES), hits => $HITS, count => $count);
    print $q->header(-type => 'text/html', -charset => 'utf-8', %{ $a{header} || {} });
    print $page->output;
}

sub fragment {
    my ($name, %params) = @_;
    my $t = HTML::Template->new(filename => "$FindBin::Bin/templates/$name.tmpl",
        cache => 1, die_on_bad_params => 0, loop_context_vars => 1);
    $t->param(%params);
    return $t->output;
}

sub need_login {
    return 1 if defined $USER;
    print $q->header(-status => '403 Forbidden', -type => 'text/plain', -charset => 'utf-8');
    print "Please log in first.\n";
    return 0;
}

sub do_list {
    my $term = $q->param('q');
    my $page = $q->param('page') || 1;
    $page = 1 unless $page =~ /^\d+$/ && $page > 0;
    my ($where, @bind) = ('', ());
    if (defined $term && length $term) {
        $where = 'WHERE name LIKE ? OR notes LIKE ? OR category LIKE ?';
        @bind = ("%$term%") x 3;
        push @MESSAGES, "Search for \"$term\".";
    }
    my ($total) = $dbh->selectrow_array("SELECT COUNT(*) FROM items $where", undef, @bind);
    my $rows = $dbh->selectall_arrayref(
        "SELECT id, name, category, price, qty FROM items $where ORDER BY name, id LIMIT ? OFFSET ?",
        { Slice => {} }, @bind, $PAGE_SIZE, ($page - 1) * $PAGE_SIZE);
    my @items = map { { id => $_->{id}, name => $_->{name}, category => category_name($_->{category}),
                        price => money($_->{price}), qty => $_->{qty} } } @$rows;
    my $npages = int(($total + $PAGE_SIZE - 1) / $PAGE_SIZE);
    my @pages = $npages > 1 && !$where ? map { { n => $_, current => $_ == $page } } 1 .. $npages : ();
    render(title => $where ? 'Search' : 'Inventory',
        body => fragment('list', items => \@items, pages => \@pages, q => $term, user => $USER));
}

sub do_view {
    my $id = $q->param('id') || 0;
    my $item = $dbh->selectrow_hashref('SELECT * FROM items WHERE id = ?', undef, $id);
    if (!$item) {
        print $q->header(-status => '404 Not Found', -type => 'text/plain', -charset => 'utf-8');
        print "No item $id\n";
        return;
    }
    render(title => $item->{name}, body => fragment('item', %$item, cents => $item->{price},
        price => money($item->{price}), category => category_name($item->{category}),
        changed_by => $item->{changed_by} || 'nobody', user => $USER));
}

sub do_login_form {
    render(title => 'Log in', body => fragment('login'));
}

sub do_login {
    my ($login, $password) = ($q->param('login') || '', $q->param('password') || '');
    my ($hash) = $dbh->selectrow_array('SELECT password FROM users WHERE login = ?', undef, $login);
    if (!$hash || $hash ne sha1_hex($password)) {
        push @MESSAGES, 'Wrong login or password.';
        audit($dbh, $login, 'failed login');
        return render(title => 'Log in', body => fragment('login'));
    }
    $session = CGI::Session->new('driver:file', undef, { Directory => data_dir() . '/sessions' })
        or die CGI::Session->errstr;
    $session->param(login => $login);
    $session->expire('+1h');
    $session->flush;
    $USER = $login;
    audit($dbh, $login, 'login');
    push @MESSAGES, "Welcome back, $login.";
    my $cookie = $q->cookie(-name => 'CGISESSID', -value => $session->id, -path => '/');
    render(title => 'Welcome', body => '<p><a href="app.cgi">Inventory</a></p>',
        header => { -cookie => $cookie });
}

sub do_logout {
    if (!$session->is_empty) {
        audit($dbh, $USER, 'logout') if defined $USER;
        $session->delete;
        $session->flush;
    }
    undef $USER;
    push @MESSAGES, 'You are logged out.';
    my $cookie = $q->cookie(-name => 'CGISESSID', -value => '', -path => '/',
        -expires => 'Thu, 01-Jan-1970 00:00:00 GMT');
    render(title => 'Logged out', body => '<p><a href="app.cgi">Inventory</a></p>',
        header => { -cookie => $cookie });
}

sub do_add_form {
    return unless need_login();
    render(title => 'Add an item', body => <<'FORM');
<form method="post" action="app.cgi"><input type="hidden" name="action" value="add">
Name <input name="name"> Category <input name="category"> Price (cents) <input name="price">
Qty <input name="qty"> Notes <input name="notes"> <input type="submit" value="Add"></form>
FORM
}

sub do_add {
    return unless need_login();
    my %f = map { $_ => scalar $q->param($_) } qw(name category price qty notes);
    if (!$f{name} || !$f{category} || ($f{price} || '') !~ /^\d+$/ || ($f{qty} || '') !~ /^\d+$/) {
        print $q->header(-status => '422 Unprocessable Entity', -type => 'text/plain', -charset => 'utf-8');
        print "name, category, price and qty are needed\n";
        return;
    }
    $dbh->do('INSERT INTO items (name, category, price, qty, notes, changed_by) VALUES (?, ?, ?, ?, ?, ?)',
        undef, @f{qw(name category price qty notes)}, $USER);
    my $id = $dbh->last_insert_id(undef, undef, 'items', 'id');
    audit($dbh, $USER, "add $id");
    push @MESSAGES, "Added item $id.";
    do_list();
}

sub do_edit {
    return unless need_login();
    my $id = $q->param('id') || 0;
    my ($price, $qty, $notes) = map { scalar $q->param($_) } qw(price qty notes);
    my $n = $dbh->do('UPDATE items SET price = ?, qty = ?, notes = ?, changed_by = ? WHERE id = ?',
        undef, $price, $qty, $notes, $USER, $id);
    audit($dbh, $USER, "edit $id");
    push @MESSAGES, $n > 0 ? "Saved item $id." : "No item $id.";
    do_view();
}

sub csv_preamble {
    return "# $SITE_NAME inventory, exported by $exported_by\n";
}

sub do_export {
    return unless need_login();
    $exported_by = $USER;
    print $q->header(-type => 'text/csv', -charset => 'utf-8',
        -attachment => 'inventory.csv');
    print csv_preamble();
    print "id,name,category,price,qty\n";
    my $sth = $dbh->prepare('SELECT id, name, category, price, qty FROM items ORDER BY id');
    $sth->execute;
    while (my @r = $sth->fetchrow_array) {
        print join(',', map { my $v = $_; $v =~ /[",]/ ? do { $v =~ s/"/""/g; qq{"$v"} } : $v } @r), "\n";
    }
    audit($dbh, $USER, 'export');
}

sub do_whoami {
    print $q->header(-type => 'text/plain', -charset => 'utf-8');
    print 'You are: ', (defined $USER ? $USER : 'anonymous'), "\n";
    print "Page views: $HITS\n";
}

END {
    # What a process exit would do anyway: the handle is closed before the
    # next request (or process) opens the file again.
    $dbh->disconnect if $dbh;
}
