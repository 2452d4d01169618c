# Shared helpers of the in-house application. No package line: loaded with
# require "lib/helpers.pl", its subs become the calling script's.

sub h {
    my ($s) = @_;
    $s = '' unless defined $s;
    $s =~ s/&/&amp;/g;
    $s =~ s/</&lt;/g;
    $s =~ s/>/&gt;/g;
    $s =~ s/"/&quot;/g;
    return $s;
}

sub money {
    my ($cents) = @_;
    return sprintf '%d.%02d %s', int($cents / 100), $cents % 100, $CURRENCY;
}

sub data_dir {
    my $dir = $ENV{APP_DATA};
    die "APP_DATA is not set: the server must pass the data directory\n" unless $dir && -d $dir;
    return $dir;
}

sub db_connect {
    my $dbh = DBI->connect('dbi:SQLite:dbname=' . data_dir() . '/app.db', '', '',
        { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
    $dbh->do('PRAGMA foreign_keys = ON');
    return $dbh;
}

sub category_name {
    my ($c) = @_;
    return exists $CATEGORY_NAMES{$c} ? $CATEGORY_NAMES{$c} : "($c)";
}

sub audit {
    my ($dbh, $who, $what) = @_;
    $dbh->do('INSERT INTO audit (login, what) VALUES (?, ?)', undef, $who, $what);
}

1;
