package FCGI::Spawn::Runner;

# The Perl half of the request runner. The Rust worker calls the entry points
# at the bottom, in order, once per request; each is a short sequence of the
# named steps above it (after ModPerl::RegistryCooker), so the isolation modes
# recombine steps instead of branching inside one long sub.
#
# Rust has already made file descriptors 0/1/2 the request's body and the
# worker's stdout and stderr pipes before begin_request runs; the steps here
# bind Perl's handles to them (STDOUT with the layer that keeps the script's
# prints in memory) and put back what a script may change.

use strict;
use warnings;

use Carp ();
use Symbol ();

our $VERSION = '0.1.0';

# Name the script is loaded under through our @INC hook. Not absolute, so
# `do` consults @INC; never a real file.
my $VIRTUAL_FILE = 'FCGI-Spawn-script.pl';

# Name of the sub a script becomes in registry mode.
my $HANDLER = '__fcgi_spawn_handler';

my %REGISTRY;          # registry: script path => compiled entry

my %BASE_ENV;          # the daemon's clean environment, captured at start
my %BASE_SIG;          # %SIG as the worker starts, restored after each request
my %KNOWN_INC;         # %INC entries that stay (checked only when it grew)
my %BASE_MAIN;         # top-level symbols of %main:: before any request
my $BASE_MAIN_COUNT;
my $BASE_UMASK;
my $BASE_CWD = '/';
my $BASE_PROGRAM_NAME;  # $0 between requests
my %TAINT_WARNED;

# Per-request state, reset by end_request.
my %req;

# $^X names the embedding daemon; scripts that start another perl with it
# (`system $^X, ...`, Capture::Tiny's tee) need the perl a CGI server runs.
{
    require Config;
    my $perl = $Config::Config{perlpath};
    $^X = $perl if defined $perl && -x $perl;
}

our $SCRIPT_STARTED;   # set by the script's generated prologue
our $IN_SCRIPT = 0;    # true while the script itself runs

# --- steps ----------------------------------------------------------------

sub capture_base_state {
    my ($keep_env, $set_env) = @_;
    %BASE_ENV = (
        (map { exists $ENV{$_} ? ($_ => $ENV{$_}) : () } @$keep_env),
        @$set_env,
    );
    %KNOWN_INC = map { $_ => 1 } keys %INC;
    # Perl calls an embedded interpreter "-e"; ps and top should say what
    # the process is.
    $0 = $BASE_PROGRAM_NAME = "fcgi-spawn";
    $BASE_UMASK = umask;
    %BASE_SIG = map { $_ => $SIG{$_} } keys %SIG;
    FCGI::Spawn::Native::snapshot_signals();
    %BASE_MAIN = map { $_ => 1 } keys %main::;
    $BASE_MAIN_COUNT = keys %main::;
    return;
}

sub set_environment {
    my ($script, $params) = @_;
    FCGI::Spawn::Native::sync_env(%BASE_ENV, @$params);
    $0 = $script;
    my $qs = $ENV{QUERY_STRING};
    # An isindex query (no '=') becomes @ARGV, as a CGI server does.
    if (defined $qs && length $qs && index($qs, '=') < 0) {
        @ARGV = map { my $w = $_; $w =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $w }
            split /\+/, $qs;
    }
    else {
        @ARGV = ();
    }
    FindBin::again() if defined &FindBin::again;
    return;
}

sub change_directory {
    my ($script) = @_;
    my $dir = $script =~ m{^(.*)/[^/]*\z}s ? ($1 eq '' ? '/' : $1) : '.';
    chdir $dir or warn "fcgi-spawn: cannot chdir to $dir: $!\n";
    return;
}

sub bind_std_handles {
    # Fresh PerlIO handles on the descriptors Rust prepared (for a body,
    # always), unless the last request left them exactly as bound: no
    # buffered input, EOF state or layers survive from the previous request.
    if ($req{has_body} || !std_handles_pristine()) {
        open STDIN, '<&=', 0 or die "fcgi-spawn: cannot bind STDIN to fd 0: $!\n";
        open STDOUT, '>&=', 1 or die "fcgi-spawn: cannot bind STDOUT to fd 1: $!\n";
    }
    # What the script prints stays in the worker until a flush or the end
    # of the request; fd 1 underneath is still the real thing.
    FCGI::Spawn::Native::capture_stdout();
    select STDOUT;
    return;
}

# STDIN and STDOUT as bind_std_handles leaves them: on fds 0 and 1, perl's
# default layers (and ours on STDOUT), nothing else.
sub std_handles_pristine {
    my ($in, $out) = (fileno STDIN, fileno STDOUT);
    return 0 unless defined $in && $in == 0 && defined $out && $out == 1;
    return join(' ', PerlIO::get_layers(*STDIN)) eq 'unix perlio'
        && join(' ', PerlIO::get_layers(*STDOUT)) eq 'unix perlio fcgi_spawn_stdout';
}

sub reset_module_globals {
    CGI::_reset_globals() if defined &CGI::_reset_globals;
    CGI::Simple::_reset_globals() if defined &CGI::Simple::_reset_globals;
    return;
}

# Package a script is compiled into: unique per path, valid as a name.
my %NAMESPACE_OF;

sub make_namespace {
    my ($script) = @_;
    return $NAMESPACE_OF{$script} //= do {
        my $name = $script;
        $name =~ s{([^A-Za-z0-9_/])}{sprintf '_%02x', ord $1}ge;
        $name =~ s{/+}{::}g;
        $name =~ s{::(?=\d)}{::_}g;
        $name =~ s{^::}{};
        "FCGI::Spawn::Sandbox::$name";
    };
}

# Opens the script and returns what our @INC hook hands to `do`: a prologue,
# then the file itself, so __FILE__, line numbers, __DATA__, BEGIN/END and
# use/require behave as when perl runs the file directly.
#   perlrun:  the file at file scope in the sandbox package; the prologue
#             clears the "inside eval" flag `do` sets, so $^S is 0 and an
#             uncaught die ends the script like a perl program.
#   registry: the file becomes the body of one sub, compiled once per
#             worker; the filter closes the sub at EOF or before __DATA__.
sub read_script {
    my ($script, $package, $mode) = @_;
    open my $fh, '<', $script or die "fcgi-spawn: cannot open $script: $!\n";
    my $source = do { local $/; <$fh> } // '';
    my $warnings = 0;
    if ($source =~ /\A#!\S*perl\S*[ \t]+(-\S+(?:[ \t]+-\S+)*)/) {
        my $flags = $1;
        $warnings = 1 if $flags =~ /^-\w*w/ || $flags =~ /\s-\w*w/;
        if ($flags =~ /-\w*[Tt]/ && !$TAINT_WARNED{$script}++) {
            warn "fcgi-spawn: $script asks for taint mode (-T), which cannot be "
                . "switched on in a running interpreter; running it without\n";
        }
    }
    my $switches = $warnings ? 'BEGIN { $^W = 1 } ' : '';
    my $registry = $mode eq 'registry';
    my $prologue = $registry
        ? "package $package; sub $HANDLER { $switches\n#line 1 \"$script\"\n"
        : "package $package; FCGI::Spawn::Native::clear_in_eval(); "
            . "\$FCGI::Spawn::Runner::SCRIPT_STARTED = 1; $switches\n#line 1 \"$script\"\n";
    # A script that switches back with `package main;` means its own file
    # scope, which is the sandbox package here.
    my $rewrite = sub { $_[0] =~ s/^(\s*package\s+)main(?=\s*[;{])/$1$package/mg };

    # Usual case, no data section: the whole text in one string.
    if ($source !~ /^__(?:END|DATA)__\b/m) {
        $rewrite->($source);
        my $text = $prologue . $source . ($registry ? "\n}\n" : '');
        return (\$text, $warnings);
    }

    # With a data section, perl must read the file itself so that DATA is a
    # handle on it; a line filter closes the handler sub before the marker
    # and turns __END__ (which opens DATA only in a main program) into
    # __DATA__.
    seek $fh, 0, 0;
    my ($in_data, $closed);
    my $filter = sub {
        return 0 if $closed;
        return length $_ ? 1 : 0 if $in_data;
        if (!length $_) {
            return 0 unless $registry;
            $_ = "\n}\n";
            $closed = 1;
            return 1;
        }
        if (/^__(?:END|DATA)__\b/) {
            $_ = ($registry ? "}\n" : '') . "__DATA__\n";
            $in_data = 1;
            return 1;
        }
        $rewrite->($_);
        return 1;
    };
    return (\$prologue, $fh, $filter, $warnings);
}

# `do` of the script through our @INC hook; returns what read_script said
# about the shebang switches.
sub load_script {
    my ($script, $package, $mode) = @_;
    my $warnings;
    my $hook = sub {
        return unless $_[1] eq $VIRTUAL_FILE;
        my @source = read_script($script, $package, $mode);
        $warnings = pop @source;
        return @source;
    };
    local @INC = ($hook, @INC);
    $@ = '';
    do $VIRTUAL_FILE;
    delete $INC{$VIRTUAL_FILE};
    return $warnings;
}

# perlrun: compile and run in one go, every request.
sub compile_and_run {
    my ($script, $package) = @_;
    local $SCRIPT_STARTED = 0;
    load_script($script, $package, 'perlrun');
    # Reached when the script fell off its end. A compile error never ran
    # the prologue: report it as perl would, by dying at the top level.
    die $@ if !$SCRIPT_STARTED && $@ ne '';
    return;
}

# registry: the compiled handler of a script, compiled again when the file
# changed (mtime, size or inode).
sub cached_handler {
    my ($script, $package) = @_;
    my @st = stat $script or die "fcgi-spawn: cannot stat $script: $!\n";
    my $stamp = "$st[9]:$st[7]:$st[1]";
    my $entry = $REGISTRY{$script};
    return $entry if $entry && $entry->{stamp} eq $stamp;
    if ($entry) {
        delete $REGISTRY{$script};
        flush_namespace($package);
    }
    my $ends_before = FCGI::Spawn::Native::end_block_count();
    my $warnings = load_script($script, $package, 'registry');
    die $@ if $@ ne '';
    my $handler = $package->can($HANDLER)
        or die "fcgi-spawn: $script did not compile into a handler\n";
    my @ends = FCGI::Spawn::Native::take_end_blocks(
        FCGI::Spawn::Native::end_block_count() - $ends_before, $script);
    my $data = do { no strict 'refs'; \*{"${package}::DATA"} };
    $entry = $REGISTRY{$script} = {
        stamp    => $stamp,
        handler  => $handler,
        ends     => \@ends,
        warnings => $warnings,
        data     => $data,
        data_pos => (defined fileno($data) ? tell($data) : -1),
    };
    # What compiling added (modules it used, packages it declared) is part of
    # the cached script now, not request state to flush.
    %KNOWN_INC = map { $_ => 1 } keys %INC;
    absorb_new_globals();
    return $entry;
}

sub run_registry {
    my ($script, $package) = @_;
    my $entry = cached_handler($script, $package);
    seek $entry->{data}, $entry->{data_pos}, 0 if $entry->{data_pos} >= 0;
    local $^W = 1 if $entry->{warnings};
    $entry->{handler}->();
    return;
}

# Legacy sites keep shared code in plain files (`require "config.pl"`,
# `do "lib/common.pl"`) without a package line: under CGI that code lands in
# main, next to the script. Here the script's main is its sandbox package, so
# such a file, required or done from the script's own package, is compiled
# into that package. Modules (.pm) and calls from other packages go to perl.
my $LIB_SEQ = 0;

sub find_file {
    my ($file) = @_;
    return -f $file ? $file : undef if $file =~ m{^(?:/|\.\.?/)};
    for my $dir (grep { !ref } @INC) {
        return "$dir/$file" if -f "$dir/$file";
    }
    return undef;
}

sub load_into_package {
    my ($file, $package, $path) = @_;
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

sub script_require {
    # Hot: every `use` of compiled script code comes here first.
    return 1 if $INC{ $_[0] };
    my ($file) = @_;
    my $package = caller;
    return CORE::require($file)
        if !defined $req{package} || $package ne $req{package}
        || $file =~ /\.pm\z/ || $file =~ /^v?[\d._]+\z/;
    return 1 if $INC{$file};
    my $path = find_file($file)
        // die "Can't locate $file in \@INC (\@INC contains: @INC) at "
        . join(' line ', (caller)[1, 2]) . ".\n";
    $INC{$file} = $path;
    my $ok = load_into_package($file, $package, $path);
    if ($@) {
        delete $INC{$file};
        die $@;
    }
    die "$file did not return a true value at " . join(' line ', (caller)[1, 2]) . ".\n"
        unless $ok;
    return $ok;
}

sub script_do {
    my ($file) = @_;
    my $package = caller;
    return CORE::do($file)
        if !defined $req{package} || $package ne $req{package} || $file =~ /\.pm\z/;
    my $path = find_file($file);
    if (!defined $path) {
        $! = 2;    # ENOENT, as do FILE reports it
        return;
    }
    $INC{$file} = $path;
    return load_into_package($file, $package, $path);
}

sub flush_namespace {
    my ($package) = @_;
    Symbol::delete_package($package);
    delete $INC{$VIRTUAL_FILE};
    return;
}

# Packages and main:: globals a script declared itself are removed, so they
# do not leak into the next request; packages brought in by `require` of a
# module (recorded in %INC) stay loaded.
sub flush_script_globals {
    return if keys %main:: == $BASE_MAIN_COUNT;
    my %from_inc;
    for my $file (keys %INC) {
        next unless $file =~ m{^([^/]+?)(?:/|\.pm\z)};
        $from_inc{"$1::"} = 1;
    }
    for my $name (keys %main::) {
        next if $BASE_MAIN{$name} || $from_inc{$name};
        if ($name =~ /::\z/) {
            Symbol::delete_package(substr $name, 0, -2);
        }
        else {
            delete $main::{$name};
        }
    }
    absorb_new_globals();
    return;
}

# Takes the current top-level symbols as the base state.
sub absorb_new_globals {
    $BASE_MAIN_COUNT = keys %main::;
    %BASE_MAIN = map { $_ => 1 } keys %main:: if $BASE_MAIN_COUNT != keys %BASE_MAIN;
    return;
}

# What a script loaded from its own site is loaded again by the next
# request, as under CGI: files without .pm (legacy `require "lib.pl"`, whose
# code went into the wiped sandbox) and modules under the --root dirs, whose
# package is removed too (no "Subroutine redefined" on the next load).
# Modules from the system @INC stay compiled in the worker.
sub flush_inc {
    my ($roots) = @_;
    for my $file (keys %INC) {
        next if $KNOWN_INC{$file};
        my $path = $INC{$file};
        next unless defined $path && !ref $path;
        if ($file !~ /\.pm\z/) {
            # Its code went into the wiped sandbox (perlrun); in registry
            # mode it lives on in the script's package.
            delete $INC{$file} unless $req{mode} eq 'registry';
        }
        elsif (grep { index($path, $_) == 0 } @$roots) {
            delete $INC{$file};
            (my $package = $file) =~ s{\.pm\z}{};
            $package =~ s{/}{::}g;
            Symbol::delete_package($package);
        }
    }
    %KNOWN_INC = map { $_ => 1 } keys %INC;
    return;
}

sub restore_interpreter_state {
    # A body may have left bytes in STDIN's buffer; changed layers go too.
    if ($req{has_body} || !std_handles_pristine()) {
        close STDIN;
        close STDOUT;
    }
    binmode STDERR;
    select STDERR;
    $/ = "\n";
    $\ = undef;
    $, = undef;
    $" = ' ';
    $; = "\034";
    $^W = 0;
    $_ = undef;
    @ARGV = ();
    umask $BASE_UMASK if umask != $BASE_UMASK;
    my $restored = 0;
    for my $sig (FCGI::Spawn::Native::changed_signals(), '__WARN__', '__DIE__') {
        my $now = $SIG{$sig};
        my $was = $BASE_SIG{$sig};
        next if !defined $now && !defined $was;
        next if defined $now && defined $was && $now eq $was;
        $SIG{$sig} = $was;
        $restored++;
    }
    FCGI::Spawn::Native::snapshot_signals() if $restored;
    $0 = $BASE_PROGRAM_NAME;
    chdir $BASE_CWD;
    return $restored;
}

# SIGPIPE: the client went away, sent FCGI_ABORT_REQUEST, or the request
# timed out. Logs where the script was (the slow spot, for a timeout).
sub client_gone {
    # A stop that arrives after the script ended is not for anyone.
    return unless $IN_SCRIPT;
    print STDERR 'fcgi-spawn: script stopped (client gone, aborted or timed out)'
        . Carp::longmess('');
    exit 0;
}

# --- entry points called from Rust ----------------------------------------

# In the master, before fork: like mod_perl's startup.pl.
sub preload_script {
    my ($file) = @_;
    package main;
    local $@;
    my $ok = do $file;
    die $@ if $@;
    die "cannot read $file: $!\n" if !defined $ok && $!;
    return 1;
}

# In the master, after the preload, around a few requests Rust runs on a
# small script of its own: the first-use work of a request (method caches,
# the runner's own) is then done once before the fork and shared by the
# workers, instead of being redone in each and copying every page it
# touches. Leaves %ENV and the runner's caches as they were.
my %ENV_BEFORE_WARM_UP;

sub warm_up_begin {
    %ENV_BEFORE_WARM_UP = %ENV;
    capture_base_state([keys %ENV], []);
    return 1;
}

sub warm_up_end {
    my ($script) = @_;
    %ENV = %ENV_BEFORE_WARM_UP;
    %ENV_BEFORE_WARM_UP = ();
    delete $REGISTRY{$script};
    flush_namespace(make_namespace($script));
    delete $NAMESPACE_OF{$script};
    return 1;
}

# Once in each worker, after fork: (KEEP, NAME, ..., '--', NAME, VALUE, ...)
# KEEP names the daemon's environment variables scripts see; NAME/VALUE
# pairs are set for every script. Everything else of the daemon's
# environment is not passed on (as php-fpm's clear_env).
sub init_worker {
    my @keep;
    push @keep, shift @_ while @_ && $_[0] ne '--';
    shift @_;
    my @set = @_;
    srand();
    # After the preload, so only script code (compiled from now on) sees it.
    no warnings 'once';
    *CORE::GLOBAL::require = \&script_require;
    *CORE::GLOBAL::do = \&script_do;
    close STDIN;
    close STDOUT;
    # A vanished client closes the response pipe; the script's next write
    # then ends it (children it execs get the default disposition back).
    $SIG{PIPE} = \&client_gone;
    capture_base_state(\@keep, \@set);
    return 1;
}

# Before the script: ($script, $isolation, NAME, VALUE, NAME, VALUE, ...).
sub begin_request {
    my ($script, $isolation, @params) = @_;
    my $package = make_namespace($script);
    %req = (
        script  => $script,
        mode    => $isolation,
        package => $package,
        ends    => FCGI::Spawn::Native::end_block_count(),
    );
    set_environment($script, \@params);
    $req{has_body} = ($ENV{CONTENT_LENGTH} // '') =~ /[1-9]/;
    change_directory($script);
    bind_std_handles();
    $| = 0;
    return 1;
}

# The script itself. Called with die untrapped: it ends like a perl program.
sub run_script {
    local $IN_SCRIPT = 1;
    if ($req{mode} eq 'registry') {
        run_registry($req{script}, $req{package});
    }
    else {
        compile_and_run($req{script}, $req{package});
    }
    return 0;
}

# END blocks the script compiled, in perl's order. Called with exit trapped.
sub run_end_blocks {
    my @blocks;
    if ($req{mode} eq 'registry') {
        my $entry = $REGISTRY{ $req{script} };
        @blocks = $entry ? @{ $entry->{ends} } : ();
    }
    else {
        my $count = FCGI::Spawn::Native::end_block_count() - ($req{ends} // 0);
        @blocks = FCGI::Spawn::Native::take_end_blocks($count, $req{script});
    }
    $req{ends} = FCGI::Spawn::Native::end_block_count();
    for my $block (@blocks) {
        eval { $block->(); 1 } or warn $@;
    }
    return 1;
}

# After the script: flushes its output and puts everything back.
sub end_request {
    my (@roots) = @_;
    # Blocks left over if the script exited inside one.
    my $left = FCGI::Spawn::Native::end_block_count() - ($req{ends} // 0);
    FCGI::Spawn::Native::take_end_blocks($left, $req{script}) if $left > 0 && defined $req{script};
    STDOUT->flush if defined fileno STDOUT;
    flush_namespace($req{package}) if defined $req{package} && ($req{mode} // '') ne 'registry';
    flush_script_globals();
    flush_inc(\@roots) if keys %INC != keys %KNOWN_INC;
    # Releases what CGI.pm keeps per request (upload temp files among it).
    reset_module_globals();
    my $signals_restored = restore_interpreter_state();
    %req = ();
    # Tells the worker to re-install its own signal handlers.
    return $signals_restored;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Runner - runs one CGI script per request inside an fcgi-spawn worker

=head1 DESCRIPTION

Loaded by the fcgi-spawn daemon into its embedded interpreter; not meant to
be used from scripts. The worker calls C<begin_request>, C<run_script>,
C<run_end_blocks> and C<end_request> for every request.

C<run_script> compiles the file at file scope into the package returned by
C<make_namespace> (C<perlrun> isolation): through an C<@INC> hook, C<do>
reads the real file after a one-line prologue, so C<__FILE__>, line numbers,
C<__DATA__>/C<__END__>, C<BEGIN> and C<END> blocks and file-scoped lexicals
behave as in a fresh perl. The prologue clears the interpreter's
"inside eval" flag, so C<$^S> is 0 and an uncaught C<die> ends the script the
way it ends a perl program (message on STDERR, exit status 255).

=cut
