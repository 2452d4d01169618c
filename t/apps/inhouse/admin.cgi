#!/usr/bin/perl
# Administration pages of the in-house application: a CGI::Application
# subclass declared in the script itself, run modes stats, users and audit,
# templates loaded through load_tmpl (HTML::Template, cached). The admin's
# name is kept in a package global set by the prerun hook only when the
# session belongs to an admin.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;

package InHouse::Admin;
use parent 'CGI::Application';
use CGI::Session;
use DBI;

our ($SITE_NAME, $PAGE_SIZE, $CURRENCY, $REPORT_LINES, %CATEGORY_NAMES, @ADMINS);
do './config.pl' or die "config.pl: " . ($@ || $! || 'did not return true');
require 'lib/helpers.pl';

our $ADMIN;    # the logged-in admin, set in cgiapp_prerun

sub setup {
    my ($self) = @_;
    $self->start_mode('stats');
    $self->mode_param('rm');
    $self->run_modes(stats => "stats", users => "users", audit => "audit_log", denied => "denied");
    $self->tmpl_path("$FindBin::Bin/templates");
    $self->param(dbh => db_connect());
}

sub cgiapp_prerun {
    my ($self) = @_;
    my $session = CGI::Session->load('driver:file', $self->query, { Directory => data_dir() . '/sessions' });
    my $login = $session && !$session->is_empty ? $session->param('login') : undef;
    if (defined $login && grep { $_ eq $login } @ADMINS) {
        $ADMIN = $login;
    }
    $self->prerun_mode('denied') unless defined $ADMIN;
}

sub page {
    my ($self, $title, @rows) = @_;
    my $t = $self->load_tmpl('admin.tmpl', cache => 1, die_on_bad_params => 0);
    $t->param(title => $title, rm => $self->get_current_runmode, user => $ADMIN,
        rows => [ map { { k => $_->[0], v => $_->[1] } } @rows ]);
    return $t->output;
}

sub stats {
    my ($self) = @_;
    my $rows = $self->param('dbh')->selectall_arrayref(
        'SELECT category, COUNT(*), SUM(qty) FROM items GROUP BY category ORDER BY category');
    return $self->page('Stock by category', map { [category_name($_->[0]), "$_->[1] items, $_->[2] in stock"] } @$rows);
}

sub users {
    my ($self) = @_;
    my $rows = $self->param('dbh')->selectall_arrayref('SELECT login, name FROM users ORDER BY login');
    return $self->page('Users', map { [$_->[0], $_->[1]] } @$rows);
}

sub audit_log {
    my ($self) = @_;
    my $rows = $self->param('dbh')->selectall_arrayref('SELECT id, login, what FROM audit ORDER BY id');
    return $self->page('Audit log', map { ["#$_->[0]", "$_->[1]: $_->[2]"] } @$rows);
}

sub denied {
    my ($self) = @_;
    $self->header_props(-status => '403 Forbidden', -type => 'text/plain', -charset => 'utf-8');
    return "Administrators only.\n";
}

sub teardown {
    my ($self) = @_;
    $self->param('dbh')->disconnect;
}

package main;

InHouse::Admin->new->run;
