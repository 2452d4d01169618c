package FCGI::Spawn::Loader;

# `require` and `do` as compiled script code sees them (CORE::GLOBAL
# overrides, installed in each worker after the preload).
#
# Under CGI a script and the plain library files it loads (`require
# "lib.pl"`, `do "settings.pl"`, awstats' lib/*.pm: files without a
# package line) all live in main, for one process. Here the script's main
# is its own package, so:
#   - a file without a package line, loaded from the script's package, is
#     compiled into that package, and its %INC entry goes when the request
#     ends, with the package's state: the next request loads it again, as
#     a new CGI process would;
#   - a module (a file with a package line), or any file loaded from
#     another package, is perl's own require: it stays loaded in the
#     worker, and the top-level names it makes are the worker's.

use strict;
use warnings;

our $VERSION = '0.1.0';

# The running script's package; undef outside a request.
our $SCRIPT_PACKAGE;
# %INC keys of the files loaded into it during the request.
our @LOADED;
# Set while a registry script compiles: what it loads then is part of the
# compiled script, not of one request.
our $KEEP_LOADED = 0;

my $LIB_SEQ = 0;

sub script_require {
    # Hot: every `use` of compiled script code comes here first.
    return 1 if $INC{ $_[0] };
    my ($file) = @_;
    my ($caller, $caller_file, $caller_line) = caller;
    return require_module($file, $caller_file, $caller_line)
        if !defined $SCRIPT_PACKAGE || $caller ne $SCRIPT_PACKAGE
        || $file =~ /^v?[\d._]+\z/;
    my $path = find_file($file);
    return require_module($file, $caller_file, $caller_line)
        if !defined $path || declares_package($path);
    $INC{$file} = $path;
    my $ok = load_into_package($file, $caller, $path);
    if ($@) {
        delete $INC{$file};
        die $@;
    }
    die "$file did not return a true value at $caller_file line $caller_line.\n"
        unless $ok;
    return $ok;
}

sub script_do {
    my ($file) = @_;
    my $caller = caller;
    return CORE::do($file)
        if !defined $SCRIPT_PACKAGE || $caller ne $SCRIPT_PACKAGE;
    my $path = find_file($file);
    if (!defined $path) {
        $! = 2;    # ENOENT, as do FILE reports it
        return;
    }
    return CORE::do($file) if declares_package($path);
    $INC{$file} = $path;
    return load_into_package($file, $caller, $path);
}

# perl's require of a module: it stays, and so do the top-level names it
# makes. A failure is reported where the script called require, as perl
# would (not inside this file).
sub require_module {
    my ($file, $caller_file, $caller_line) = @_;
    my $result;
    my $ok = eval {
        $result = FCGI::Spawn::Symbols::owning_new_names(sub { CORE::require($file) });
        1;
    };
    return $result if $ok;
    my $error = $@;
    $error =~ s/ at \Q${\__FILE__}\E line \d+\.\n/ at $caller_file line $caller_line.\n/;
    die $error;
}

sub find_file {
    my ($file) = @_;
    return -f $file ? $file : undef if $file =~ m{^(?:/|\.\.?/)};
    for my $dir (grep { !ref } @INC) {
        return "$dir/$file" if -f "$dir/$file";
    }
    return undef;
}

# Whether a file declares a package of its own (a module) rather than
# being a plain library meant to land in its caller's main.
my %DECLARES;    # path => [stamp, answer]

sub declares_package {
    my ($path) = @_;
    my @st = stat $path or return 0;
    my $stamp = "$st[9]:$st[7]:$st[1]";
    my $known = $DECLARES{$path};
    return $known->[1] if $known && $known->[0] eq $stamp;
    open my $fh, '<', $path or return 0;
    my $source = '';
    1 while read $fh, $source, 65536, length $source;
    my $answer = $source =~ /^\s*package\s+[A-Za-z_]\w*(?:::\w+)*\s*(?:[\d._v]+\s*)?[;{]/m ? 1 : 0;
    $DECLARES{$path} = [$stamp, $answer];
    return $answer;
}

sub load_into_package {
    my ($file, $package, $path) = @_;
    push @LOADED, $file unless $KEEP_LOADED;
    my $virtual = 'FCGI-Spawn-lib-' . ++$LIB_SEQ . '.pl';
    my $hook = sub {
        return unless $_[1] eq $virtual;
        open my $fh, '<', $path or return;
        return (\"package $package;\n#line 1 \"$path\"\n", $fh);
    };
    local @INC = ($hook, @INC);
    my @result = CORE::do($virtual);
    delete $INC{$virtual};
    return wantarray ? @result : $result[-1];
}

# The files this request loaded into the script's package are forgotten.
sub forget_loaded {
    delete @INC{@LOADED};
    @LOADED = ();
    return;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Loader - `require` and `do` for scripts run by fcgi-spawn

=head1 DESCRIPTION

Installed by L<FCGI::Spawn::Runner> as C<CORE::GLOBAL::require> and
C<CORE::GLOBAL::do> in each worker. A plain library file (no package line)
loaded from a script's package is compiled into that package and loaded
again by the next request, as in a new CGI process; modules stay loaded.

=cut
