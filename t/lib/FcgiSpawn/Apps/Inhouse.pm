package FcgiSpawn::Apps::Inhouse;

=head1 NAME

FcgiSpawn::Apps::Inhouse - the suite's in-house application (t/apps/inhouse): logins, sessions, a database, templates, formats

=head1 SYNOPSIS

    my $app = FcgiSpawn::Apps::Inhouse::setup($tmpdir);
    $app->{reset}->();    # fresh data for both sides before each run

=head1 DESCRIPTION

The application lives in F<t/apps/inhouse>: F<app.cgi> (CGI.pm,
CGI::Session file sessions in a cookie, HTML::Template with C<cache =E<gt>
1>, DBI + DBD::SQLite, C<do "./config.pl">, C<require "lib/helpers.pl"> of
a file without a package line, package globals C<$USER> and C<$HITS>, a
hit counter in the database, a CSV export whose "exported by" line comes
from a named sub reading a file-scoped C<my>, an END block), F<report.cgi>
(a text report with C<format STDOUT_TOP>, C<format STDOUT>, a second format
selected with C<$~>, C<$=> lines a page, totals printed by an END block) and
F<admin.cgi> (a CGI::Application subclass declared in the script, the
admin's name in a package global set only for admins).

Data: the set-up builds a SQLite database (items, users, an audit table,
the counter) once; C<reset> copies it, with an empty sessions directory,
to one directory per side. Each request names its side's directory in the
C<APP_DATA> parameter (C<side_params>), so the persistent side and the
plain-CGI side replay the same sequence on their own data.

Sources: anonymous visitors (unordered: lists, search, item pages, the
report, the admin and export pages refused, a failed login), and two
logged-in sessions, each ordered with its own cookie jar per side (C<jar>):
alice (admin: log in, add, search, edit, view, export, admin pages, report,
log out) and bob (log in, add, export, admin refused, log out). Anonymous
requests must never show a user: that is the issue's security bug.

=head2 Harness keys this fixture uses beyond the basic request

C<reset> (app level: called before each run, so every mode starts from the
same data), C<jar> (requests with the same jar name share a cookie jar per
side: C<Set-Cookie> updates it, an empty value or a 1970 expiry removes the
cookie, C<HTTP_COOKIE> is sent from it), and C<map_ids> (each match, or its
first group, is replaced by C<< <id N> >>, N numbering distinct values in
their order of appearance on that side during the run: the two sides' random
session ids compare equal when they play the same role, and a session id
showing up where the other side has none or another one is a difference).

=head2 Masks

C<map_ids> for the session id in C<Set-Cookie: CGISESSID=...> (random by
design, different on each side). The value of the C<Date:> header CGI.pm
adds to every response that sets a cookie (the current time).

=cut

use strict;
use warnings;

use Cwd qw(abs_path);
use DBI;
use Digest::SHA qw(sha1_hex);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path remove_tree);
use FcgiSpawn::Apps::Fixture qw(perl_has);

my $APP = abs_path(dirname(__FILE__) . '/../../../apps/inhouse');

sub setup {
    my ($tmp) = @_;
    my %app = (name => 'inhouse', roots => [$APP], sources => []);
    my @need = qw(CGI CGI::Session CGI::Application HTML::Template DBI DBD::SQLite);
    return { %app, skip => "missing Perl modules (one of @need)" } unless perl_has(@need);
    make_path("$tmp/pristine");
    build_database("$tmp/pristine/app.db");
    my %dir = (persistent => "$tmp/data-persistent", cgi => "$tmp/data-cgi");
    my $reset = sub {
        for my $d (values %dir) {
            remove_tree($d);
            make_path("$d/sessions");
            copy("$tmp/pristine/app.db", "$d/app.db") or die "copy app.db to $d: $!";
        }
    };
    $reset->();

    my $side = { persistent => { APP_DATA => $dir{persistent} }, cgi => { APP_DATA => $dir{cgi} } };
    my $date = qr/^Date: \K\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT(?=\r?$)/m;
    my $r = sub {
        my ($name, $script, $query, %more) = @_;
        return {
            name        => "inhouse $name",
            script      => "$APP/$script",
            query       => defined $query ? $query : '',
            side_params => $side,
            map_ids     => [qr/CGISESSID=([0-9a-f]{32})/],
            mask        => [$date],
            %more,
        };
    };
    my $post = sub {
        my ($name, $script, $body, %more) = @_;
        return $r->($name, $script, '', method => 'POST', body => $body,
            content_type => 'application/x-www-form-urlencoded', %more);
    };

    my @anonymous = (
        $r->('anonymous: list', 'app.cgi'),
        $r->('anonymous: list page 2', 'app.cgi', 'action=list&page=2'),
        $r->('anonymous: list page 3', 'app.cgi', 'action=list&page=3'),
        $r->('anonymous: item', 'app.cgi', 'action=view&id=3'),
        $r->('anonymous: edited item', 'app.cgi', 'action=view&id=2'),
        $r->('anonymous: no such item', 'app.cgi', 'action=view&id=999'),
        $r->('anonymous: search', 'app.cgi', 'action=search&q=bolt'),
        $r->('anonymous: search, markup', 'app.cgi', 'action=search&q=%3Cb%3E%26'),
        $r->('anonymous: whoami', 'app.cgi', 'action=whoami'),
        $r->('anonymous: report', 'report.cgi'),
        $r->('anonymous: admin refused', 'admin.cgi'),
        $r->('anonymous: admin users refused', 'admin.cgi', 'rm=users'),
        $r->('anonymous: export refused', 'app.cgi', 'action=export'),
        $post->('anonymous: add refused', 'app.cgi', 'action=add&name=x&category=tool&price=1&qty=1'),
        $r->('anonymous: unknown action', 'app.cgi', 'action=drop_tables'),
        $post->('anonymous: wrong password', 'app.cgi', 'action=login&login=alice&password=guess'),
    );
    my @alice = map { { %$_, jar => 'alice' } } (
        $r->('alice: login form', 'app.cgi', 'action=login_form'),
        $post->('alice: log in', 'app.cgi', 'action=login&login=alice&password=wonderland'),
        $r->('alice: whoami', 'app.cgi', 'action=whoami'),
        $r->('alice: list', 'app.cgi'),
        $r->('alice: add form', 'app.cgi', 'action=add_form'),
        $post->('alice: add', 'app.cgi',
            'action=add&name=Hex+key+set&category=tool&price=1250&qty=7&notes=metric+%26+imperial'),
        $r->('alice: search', 'app.cgi', 'action=search&q=Hex'),
        $post->('alice: edit', 'app.cgi', 'action=edit&id=2&price=199&qty=50&notes=re-priced+by+alice'),
        $r->('alice: view edited', 'app.cgi', 'action=view&id=2'),
        $r->('alice: export', 'app.cgi', 'action=export'),
        $r->('alice: admin stats', 'admin.cgi'),
        $r->('alice: admin users', 'admin.cgi', 'rm=users'),
        $r->('alice: admin audit', 'admin.cgi', 'rm=audit'),
        $r->('alice: report', 'report.cgi'),
        $r->('alice: log out', 'app.cgi', 'action=logout'),
        $r->('alice: whoami after logout', 'app.cgi', 'action=whoami'),
    );
    my @bob = map { { %$_, jar => 'bob' } } (
        $post->('bob: log in', 'app.cgi', 'action=login&login=bob&password=builder'),
        $post->('bob: add', 'app.cgi', 'action=add&name=Primer%2C+grey&category=paint&price=899&qty=12&notes='),
        $r->('bob: export', 'app.cgi', 'action=export'),
        $r->('bob: admin refused', 'admin.cgi', 'rm=audit'),
        $r->('bob: whoami', 'app.cgi', 'action=whoami'),
        $r->('bob: log out', 'app.cgi', 'action=logout'),
    );
    return {
        %app,
        reset   => $reset,
        preload => ['CGI', 'CGI::Session', 'HTML::Template', 'DBI', 'DBD::SQLite'],
        sources => [
            { name => 'anonymous visitors', ordered => 0, requests => \@anonymous },
            { name => 'alice, logged in',   ordered => 1, requests => \@alice },
            { name => 'bob, logged in',     ordered => 1, requests => \@bob },
        ],
    };
}

sub build_database {
    my ($file) = @_;
    unlink $file;
    my $dbh = DBI->connect("dbi:SQLite:dbname=$file", '', '', { RaiseError => 1, PrintError => 0 });
    $dbh->do($_) for (
        'CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
            category TEXT NOT NULL, price INTEGER NOT NULL, qty INTEGER NOT NULL,
            notes TEXT, changed_by TEXT)',
        'CREATE TABLE users (login TEXT PRIMARY KEY, password TEXT NOT NULL, name TEXT NOT NULL)',
        'CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, login TEXT, what TEXT)',
        'CREATE TABLE counter (n INTEGER NOT NULL)',
        'INSERT INTO counter VALUES (0)',
    );
    $dbh->do('INSERT INTO users VALUES (?, ?, ?)', undef, @$_) for (
        ['alice', sha1_hex('wonderland'), 'Alice Liddell'],
        ['bob',   sha1_hex('builder'),    'Bob Builder'],
    );
    my @items = (
        ['Hex bolt M6x20', 'bolt', 12, 500, 'zinc plated'],
        ['Hex bolt M8x30', 'bolt', 18, 320, ''],
        ['Wing nut M6', 'bolt', 9, 410, 'for the <b>old</b> racks'],
        ['Claw hammer', 'tool', 1450, 14, ''],
        ['Screwdriver set', 'tool', 2199, 9, '6 pieces'],
        ['Spirit level 60 cm', 'tool', 1875, 4, ''],
        ['Wood stain, oak', 'paint', 1099, 22, ''],
        ['Masonry paint, white', 'paint', 3450, 6, '10 l'],
        ['Brush 50 mm', 'paint', 399, 48, ''],
        ['Hinge 75 mm', 'spare', 245, 120, 'pairs'],
        ['Door handle "Classic"', 'spare', 1590, 11, ''],
        ['Drawer runner 450', 'spare', 899, 30, ''],
        ['Washer M6', 'bolt', 2, 5000, ''],
        ['Pliers', 'tool', 1290, 7, ''],
        ['Sealant, clear', 'misc', 675, 15, 'category not in config.pl'],
    );
    $dbh->do('INSERT INTO items (name, category, price, qty, notes) VALUES (?, ?, ?, ?, ?)', undef, @$_)
        for @items;
    $dbh->disconnect;
}

1;
