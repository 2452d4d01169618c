package FCGI::Spawn::Loader;

# `require` and `do` as all code compiled after the runner sees them
# (CORE::GLOBAL overrides installed when the runner loads).
#
# perl compiles a required file in the package of the code that requires
# it, so a plain library file (no package line: `require "lib.pl"`, `do
# "settings.pl"`, awstats' lib/*.pm) lands in its caller's package. An
# override must keep that: each caller package gets a small requirer
# compiled in it. Then what a request loads is one of:
#   - a plain file loaded into one of the running script's packages (its
#     sandbox, packages it declares): it goes with them, its %INC entry
#     dropped when the request ends, so the next request loads it again as
#     a new CGI process would;
#   - a site library with a package of its own, loaded by path (`require
#     "./lib/Site.pl"`) or from under a --root: likewise forgotten, its
#     packages deleted, so edits show and its state starts fresh;
#   - a module from the system @INC: it stays loaded in the worker, and the
#     top-level names it makes while loading are the worker's.

use strict;
use warnings;

use Scalar::Util ();

our $VERSION = '0.1.0';

# The running script's packages (name => 1); empty outside a request. A
# reference, so a registry script's set (made once) is put in place whole.
our $SCRIPT_PACKAGES = {};
# The --root directories, each ending in '/'.
our @ROOTS;
# What the request loaded that goes with it: [%INC key, packages its load
# made] for each file.
our @LOADED;
# %INC keys of the files that failed to load during the request.
our @FAILED;
# %INC keys of the site libraries a registry script's compile loaded, and
# the packages their loading made.
our @COMPILED_SITE_FILES;
our @COMPILED_SITE_PACKAGES;
# %INC key => code to run once that module has loaded into the worker
# (the runner snapshots modules with request state).
our %AFTER_LOAD;
# %INC as the worker has it between requests: an entry a request adds
# without loading a file (`$INC{'Foo.pm'} = 1` to stand in for a module)
# goes, one it deletes comes back.
our %WORKER_INC;
# The directories of @INC between requests (the daemon's @INC, a
# preload's `use lib`): a module found in one of them is the worker's.
our %WORKER_INC_DIRS;
# %INC keys of the files loaded since the last request ended.
my %LOADED_NOW;
# Set while a registry script compiles: what it loads then is part of the
# compiled script, not of one request.
our $KEEP_LOADED = 0;
# Set while a registry script runs: a plain file it requires into its own
# package is kept with it (SPEC §3, registry), [%INC key, package, its
# snapshot before the load, after it, the file's path] each.
our $KEEP_RUN_LOADS = 0;
our @KEPT_RUN_LOADS;

# Where the requirers report failures from; rewritten to the caller's place.
my $REQUIRER_FILE = 'FCGI-Spawn-require';
my %REQUIRER;    # package => [[require sub, do sub], the package's stash (weak)]

sub script_require {
    # Hot: every `use` of compiled code comes here first.
    return 1 if $INC{ $_[0] };
    my ($file) = @_;
    my ($caller, $caller_file, $caller_line) = caller;
    my $requirer = requirer($caller)->[0];
    return load($requirer, $file, $caller_file, $caller_line) if $file =~ /^v?[\d._]+\z/;
    my $path = find_file($file);
    my @packages = defined $path ? declared_packages($path) : ();
    if ($KEEP_RUN_LOADS && defined $path && !@packages && $SCRIPT_PACKAGES->{$caller}) {
        # A registry script's run loading a plain file into its package:
        # kept with the compiled script (the runner merges what the load
        # made, as loaded, into the script's snapshot), not loaded again.
        my $before = FCGI::Spawn::Native::snapshot_package($caller);
        my $result = load($requirer, $file, $caller_file, $caller_line);
        push @KEPT_RUN_LOADS, [ $file, $caller, $before, FCGI::Spawn::Native::snapshot_package($caller), $path ];
        $FCGI::Spawn::Symbols::REQUEST_FILES{$file} = 1;
        return $result;
    }
    if (in_request() && defined $path && (@packages ? site_file($file, $path) : $SCRIPT_PACKAGES->{$caller})) {
        my @new = grep { !FCGI::Spawn::Symbols::stash_of($_) } @packages;
        my $result = load($requirer, $file, $caller_file, $caller_line);
        push @LOADED, [ $file, \@new ];
        $FCGI::Spawn::Symbols::REQUEST_FILES{$file} = 1;
        return $result;
    }
    return load($requirer, $file, $caller_file, $caller_line) if defined $path && !@packages;
    if ($KEEP_LOADED && defined $path && site_file($file, $path)) {
        # A registry script's compile loading a site library: it is part
        # of that compiled script, its packages and %INC entry with it.
        my @new = grep { !FCGI::Spawn::Symbols::stash_of($_) } @packages;
        my $result = load($requirer, $file, $caller_file, $caller_line);
        push @COMPILED_SITE_FILES, $file;
        push @COMPILED_SITE_PACKAGES, @new;
        return $result;
    }
    my $result = FCGI::Spawn::Symbols::owning_new_names(
        sub { load($requirer, $file, $caller_file, $caller_line) });
    # What the runner does when a module loads (FCGI's accept replaced)
    # is part of the module as the worker has it.
    $AFTER_LOAD{$file}->() if $AFTER_LOAD{$file};
    # Its subs are the worker's: a script that redefines one later gets it
    # put back. (The running script's packages are not.)
    FCGI::Spawn::Native::record_new_code(keys %$SCRIPT_PACKAGES,
        map { substr $_, 0, -2 } grep { /::\z/ } FCGI::Spawn::Symbols::script_names());
    return $result;
}

# Whether what is loaded now goes with the request: a script runs, and it
# is not a registry script's compile (what that loads is the script's).
sub in_request { return %$SCRIPT_PACKAGES && !$KEEP_LOADED }

# A file of the site rather than of the system: named by path, found
# under a --root, or found through a directory the script added to @INC
# (its own `use lib`, not the worker's @INC): a script's own modules are
# the script's, as much as the files it requires by path.
sub site_file {
    my ($file, $path) = @_;
    return 1 if $file =~ m{^(?:/|\.\.?/)} || grep { index($path, $_) == 0 } @ROOTS;
    return 0 unless %WORKER_INC_DIRS;
    return !$WORKER_INC_DIRS{ substr $path, 0, length($path) - length($file) - 1 };
}

sub script_do {
    my ($file) = @_;
    my $caller = caller;
    my $path = in_request() ? find_file($file) : undef;
    my @new = defined $path ? grep { !FCGI::Spawn::Symbols::stash_of($_) } declared_packages($path) : ();
    my $result = requirer($caller)->[1]->($file);
    if (defined $path && exists $INC{$file}) {
        push @LOADED, [ $file, \@new ];
        $FCGI::Spawn::Symbols::REQUEST_FILES{$file} = 1;
    }
    return $result;
}

# The require and do of a package: compiled in it, so that files without a
# package line land there, as without the override.
sub requirer {
    my ($package) = @_;
    # A script's packages are made anew for each request: their requirers
    # are too (compiled code is tied to the package it was compiled in).
    return make_requirer($package) if $SCRIPT_PACKAGES->{$package};
    # Another package by the same name (a site library's, deleted and made
    # again by a later request) needs a requirer of its own: one compiled
    # in the old one would `do` a plain file into the old one's variables.
    my $stash = FCGI::Spawn::Symbols::stash_of($package);
    my $known = $REQUIRER{$package};
    return $known->[0] if $known && $stash && $known->[1] && $known->[1] == $stash;
    my $subs = make_requirer($package);
    $REQUIRER{$package} = [ $subs, $stash ];
    Scalar::Util::weaken($REQUIRER{$package}[1]) if $stash;
    return $subs;
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
    if (eval { $result = $requirer->($file); 1 }) {
        $LOADED_NOW{$file} = 1;
        return $result;
    }
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

# %INC as it is before the first request (the master's warm-up or a
# worker's first) is the worker's.
sub begin_request {
    %WORKER_INC = %INC unless %WORKER_INC;
    return;
}

sub restore_inc {
    my %loaded = %LOADED_NOW;
    %LOADED_NOW = ();
    # Usual case: nothing added, nothing deleted.
    return if !%loaded && keys %INC == keys %WORKER_INC;
    for my $file (grep { !exists $WORKER_INC{$_} } keys %INC) {
        if ($loaded{$file} || loaded_by_perl($file)) {
            $WORKER_INC{$file} = $INC{$file};
        }
        else {
            delete $INC{$file};
        }
    }
    exists $INC{$_} or $INC{$_} = $WORKER_INC{$_} for keys %WORKER_INC;
    return;
}

# A module perl loaded by itself, not through the override (IO::File for
# a method call on a handle): its file is there and so is its package.
sub loaded_by_perl {
    my ($file) = @_;
    my $path = $INC{$file};
    return 0 unless defined $path && !ref $path && -f $path && $file =~ /\.pm\z/;
    (my $package = substr $file, 0, -3) =~ s{/}{::}g;
    return FCGI::Spawn::Symbols::stash_of($package) ? 1 : 0;
}

# The packages a file declares: none for a plain library meant to land in
# its caller's package.
my %DECLARES;    # path => [stamp, packages]

sub declared_packages {
    my ($path) = @_;
    my @st = stat $path or return;
    my $stamp = "$st[9]:$st[7]:$st[1]";
    my $known = $DECLARES{$path};
    return @{ $known->[1] } if $known && $known->[0] eq $stamp;
    open my $fh, '<', $path or return;
    my $source = '';
    FCGI::Spawn::Symbols::read_whole($fh, \$source);
    my @packages = FCGI::Spawn::Symbols::declared_packages(\$source);
    $DECLARES{$path} = [ $stamp, \@packages ];
    return @packages;
}

# The files of the running request, whose subs are its own: the script and
# the plain files it loaded.
sub request_files {
    my ($script) = @_;
    return ($script, grep { defined && !ref } map { $INC{ $_->[0] } } @LOADED);
}

# The %INC entries of the site libraries a registry script's compile just
# loaded, taken out of %INC (the script puts them back for its runs), and
# the packages they made.
sub take_compiled_site_files {
    my %entries = map { exists $INC{$_} ? ($_ => delete $INC{$_}) : () } @COMPILED_SITE_FILES;
    my %seen;
    my @packages = grep { !$seen{$_}++ && FCGI::Spawn::Symbols::stash_of($_) } @COMPILED_SITE_PACKAGES;
    @COMPILED_SITE_FILES = @COMPILED_SITE_PACKAGES = ();
    return (\%entries, \@packages);
}

# What the packages of the site files the request loaded hold goes (an
# object's DESTROY runs), before the response ends, as the rest of the
# script's; forget_loaded deletes the packages after it.
sub release_loaded {
    FCGI::Spawn::Native::release_package_data($_, 1) for map { @{ $_->[1] } } @LOADED;
    return;
}

# The request is over: what it loaded of the site is forgotten, with the
# packages that loading made, and so are the failures to load a file.
sub forget_loaded {
    $SCRIPT_PACKAGES = {};
    # Usual case: the request loaded nothing and failed to load nothing.
    return if !@LOADED && !@FAILED && !%LOADED_NOW && keys %INC == keys %WORKER_INC;
    for my $loaded (@LOADED) {
        my ($file, $packages) = @$loaded;
        delete $INC{$file};
        FCGI::Spawn::Symbols::delete_package($_) for @$packages;
    }
    @LOADED = ();
    %FCGI::Spawn::Symbols::REQUEST_FILES = ();
    delete @INC{ grep { !defined $INC{$_} } @FAILED };
    @FAILED = ();
    restore_inc();
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
script's package, and a site library loaded by path or from under a
C<--root>, are loaded again by the next request, as in a new CGI process;
modules from the system C<@INC> stay loaded, and the top-level names they
make are the worker's.

=cut
