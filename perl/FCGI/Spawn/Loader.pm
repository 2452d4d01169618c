package FCGI::Spawn::Loader;

# `require` and `do` as all code compiled after the runner sees them
# (CORE::GLOBAL overrides installed when the runner loads).
#
# perl compiles a required file in the package of the code that requires
# it, so a plain library file (no package line: `require "lib.pl"`, `do
# "settings.pl"`, awstats' lib/*.pm) lands in its caller's package. An
# override must keep that: each caller package gets a small requirer
# compiled in it. Then:
#   - a plain file loaded from one of the running script's packages (its
#     sandbox, packages it declares) goes with them: its %INC entry is
#     dropped when the request ends, so the next request loads it again,
#     as a new CGI process would;
#   - a module (a file with a package line) stays loaded in the worker,
#     and the top-level names it makes while loading are the worker's.

use strict;
use warnings;

our $VERSION = '0.1.0';

# The running script's packages (name => 1); empty outside a request.
our %SCRIPT_PACKAGES;
# %INC keys of the plain files loaded into them during the request.
our @LOADED;
# %INC keys of the files that failed to load during the request.
our @FAILED;
# Set while a registry script compiles: what it loads then is part of the
# compiled script, not of one request.
our $KEEP_LOADED = 0;

# Where the requirers report failures from; rewritten to the caller's place.
my $REQUIRER_FILE = 'FCGI-Spawn-require';
my %REQUIRER;    # package => [require sub, do sub]

sub script_require {
    # Hot: every `use` of compiled code comes here first.
    return 1 if $INC{ $_[0] };
    my ($file) = @_;
    my ($caller, $caller_file, $caller_line) = caller;
    my $requirer = requirer($caller)->[0];
    return load($requirer, $file, $caller_file, $caller_line) if $file =~ /^v?[\d._]+\z/;
    my $path = find_file($file);
    if (!defined $path || declares_package($path)) {
        my $result = FCGI::Spawn::Symbols::owning_new_names(
            sub { load($requirer, $file, $caller_file, $caller_line) });
        # Its subs are the worker's: a script that redefines one later
        # gets it put back. (The running script's packages are not.)
        FCGI::Spawn::Native::record_new_code(keys %SCRIPT_PACKAGES,
            map { substr $_, 0, -2 } grep { /::\z/ } FCGI::Spawn::Symbols::script_names());
        return $result;
    }
    my $result = load($requirer, $file, $caller_file, $caller_line);
    push @LOADED, $file if $SCRIPT_PACKAGES{$caller} && !$KEEP_LOADED;
    return $result;
}

sub script_do {
    my ($file) = @_;
    my $caller = caller;
    my $result = requirer($caller)->[1]->($file);
    push @LOADED, $file
        if $SCRIPT_PACKAGES{$caller} && !$KEEP_LOADED && exists $INC{$file};
    return $result;
}

# The require and do of a package: compiled in it, so that files without a
# package line land there, as without the override.
sub requirer {
    my ($package) = @_;
    # A script's packages are made anew for each request: their requirers
    # are too (a perl without threads ties compiled code to the stash).
    return make_requirer($package) if $SCRIPT_PACKAGES{$package};
    return $REQUIRER{$package} //= make_requirer($package);
}

sub make_requirer {
    my ($package) = @_;
    my $subs = eval "package $package;\n#line 1 \"$REQUIRER_FILE\"\n"
        . '[sub { CORE::require($_[0]) }, sub { CORE::do($_[0]) }]';
    return $subs || die "fcgi-spawn: cannot compile a requirer for package $package: $@";
}

# Runs the requirer; a failure is reported where the caller required the
# file, as perl would (not inside the requirer).
sub load {
    my ($requirer, $file, $caller_file, $caller_line) = @_;
    my $result;
    return $result if eval { $result = $requirer->($file); 1 };
    my $error = $@;
    # perl marks a file that failed to load (undef in %INC) and refuses to
    # try again ("Attempt to reload"); a new CGI process would try again.
    push @FAILED, $file if exists $INC{$file} && !defined $INC{$file};
    $error =~ s/ at \Q$REQUIRER_FILE\E line \d+\.\n/ at $caller_file line $caller_line.\n/;
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
# being a plain library meant to land in its caller's package.
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

# The files of the running request, whose subs are its own: the script and
# the plain files it loaded.
sub request_files {
    my ($script) = @_;
    return ($script, grep { defined && !ref } map { $INC{$_} } @LOADED);
}

# The request is over: the files it loaded into the script's packages are
# forgotten, with the packages, and so are the failures to load a file.
sub forget_loaded {
    delete @INC{@LOADED};
    @LOADED = ();
    delete @INC{ grep { !defined $INC{$_} } @FAILED };
    @FAILED = ();
    %SCRIPT_PACKAGES = ();
    return;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Loader - `require` and `do` for code run by fcgi-spawn

=head1 DESCRIPTION

Installed by L<FCGI::Spawn::Runner> as C<CORE::GLOBAL::require> and
C<CORE::GLOBAL::do>. Files still load into their caller's package, as
without an override. A plain library file (no package line) loaded into a
script's package is loaded again by the next request, as in a new CGI
process; modules stay loaded, and the top-level names they make are the
worker's.

=cut
