package FCGI::Spawn::Runner;

# The Perl half of the request runner. A request goes through the same
# named steps in every isolation mode (after ModPerl::RegistryCooker); a
# table per mode picks the implementation of the steps that differ:
#
#   prepare     %ENV, $0, @ARGV, cwd, STDIN/STDOUT bound to fds 0/1
#   run         perlrun: compile the file into a fresh package and run it
#               registry: compile once per worker (cached), run the cached sub
#               fork: in the request's own child process, run the cached sub
#   end_blocks  the script's END blocks
#   finish      what process exit does before a CGI response is complete:
#               the selected handle back, ties over the std handles undone,
#               the script's symbols and the handles they hold dropped
#   restore     after the response: everything else back (each part
#               trapped), then the invariants checked; a worker that cannot
#               vouch for its state says so and is replaced
#
# Rust calls the entry points at the bottom, in that order. It has already
# made file descriptors 0/1/2 the request's body and the worker's stdout
# and stderr pipes before begin_request runs.

use strict;
use warnings;

use Carp ();

our $VERSION = '0.1.0';

# Name the script is loaded under through our @INC hook. Not absolute, so
# `do` consults @INC; never a real file.
my $VIRTUAL_FILE = 'FCGI-Spawn-script.pl';

# Name of the sub a script becomes in registry and fork modes.
my $HANDLER = '__fcgi_spawn_handler';

# Names forced into main:: whatever the package, and other special globals.
my %SPECIAL_NAMES = map { $_ => 1 }
    qw(STDIN STDOUT STDERR ARGV ARGVOUT ENV INC SIG _ a b);

my %REGISTRY;        # script path => compiled entry (registry, fork)
my %FORK_ONLY;       # script path => why: registry runs it in a child

# The worker's state between requests: what every request starts from and
# is put back to. Captured once, after the preload.
my %BASE = (
    env          => {},
    sig          => {},
    program_name => 'fcgi-spawn',
    core_global  => undef,
);
my %TAINT_WARNED;

# The request being served; emptied by end_request.
my %req;

# $^X names the embedding daemon; scripts that start another perl with it
# (`system $^X, ...`, Capture::Tiny's tee) need the perl a CGI server runs.
{
    require Config;
    my $perl = $Config::Config{perlpath};
    $^X = $perl if defined $perl && -x $perl;
}

our $SCRIPT_STARTED;   # set by a perlrun script's generated prologue

# From here on every `require` and `do` goes through the loader: the
# preloads' too, so that the top-level names any module makes while it
# loads, at start or at run time, are known as the worker's.
{
    no warnings 'once';
    *CORE::GLOBAL::require = \&FCGI::Spawn::Loader::script_require;
    *CORE::GLOBAL::do = \&FCGI::Spawn::Loader::script_do;
}

# Runs the parts of a step in order. With a list for failures, each part
# is trapped and its failure recorded (finish and end: the rest must still
# be put back); without, a die ends the step. With FCGI_SPAWN_STEP_COSTS=N
# in the daemon's environment, each part's CPU time is added up and logged
# every N requests (bench/cost reads it).
our $STEP_COSTS = $ENV{FCGI_SPAWN_STEP_COSTS} // 0;
my (%COST_NS, @COST_ORDER, $COSTED_REQUESTS);
if ($STEP_COSTS) {
    require Time::HiRes;
}

sub run_parts {
    my ($step, $failed, $parts) = @_;
    return run_parts_costed($step, $failed, $parts) if $STEP_COSTS;
    if (!$failed) {
        $_->[1]->() for @$parts;
        return;
    }
    # One eval for them all, the usual case. Not through $_: a part may
    # put $_ back, and $_ would be an alias of the list's element.
    my $i = 0;
    return if eval {
        for my $part (@$parts) { $part->[1]->(); ++$i }
        1;
    };
    # After a failure the parts after it still run, each trapped.
    push @$failed, "$parts->[$i][0]: $@";
    for my $part (@$parts[ $i + 1 .. $#$parts ]) {
        eval { $part->[1]->(); 1 } or push @$failed, "$part->[0]: $@";
    }
    return;
}

sub run_parts_costed {
    my ($step, $failed, $parts) = @_;
    for my $part (@$parts) {
        my ($what, $code) = @$part;
        my $t0 = Time::HiRes::clock_gettime(Time::HiRes::CLOCK_THREAD_CPUTIME_ID());
        if ($failed) {
            eval { $code->(); 1 } or push @$failed, "$what: $@";
        }
        else {
            $code->();
        }
        my $key = "$step/$what";
        push @COST_ORDER, $key unless exists $COST_NS{$key};
        $COST_NS{$key} += Time::HiRes::clock_gettime(Time::HiRes::CLOCK_THREAD_CPUTIME_ID()) - $t0;
    }
    return;
}

sub log_step_costs {
    return unless $STEP_COSTS && ++$COSTED_REQUESTS >= $STEP_COSTS;
    print STDERR "fcgi-spawn: step costs over $COSTED_REQUESTS requests (CPU µs per request): ",
        join('; ', map { sprintf '%s %.2f', $_, $COST_NS{$_} / $COSTED_REQUESTS * 1e6 } @COST_ORDER), "\n";
    %COST_NS = ();
    @COST_ORDER = ();
    $COSTED_REQUESTS = 0;
    return;
}

# --- the steps that differ per isolation mode --------------------------------

my %MODES = (
    perlrun => {
        run        => \&compile_and_run,
        end_blocks => \&compiled_end_blocks,
        finish     => \&drop_sandbox,
    },
    registry => {
        run        => \&run_cached,
        end_blocks => \&cached_end_blocks,
        finish     => \&reset_cached_state,
    },
    # Compiled ahead of any request (precompile_script), never run.
    precompile => {
        run        => sub { },
        end_blocks => sub { () },
        finish     => sub { },
    },
    # In the request's child, which exits after it: process exit does the
    # finishing.
    fork => {
        run        => \&run_cached,
        end_blocks => \&cached_end_blocks,
        finish     => sub { },
    },
);

# --- prepare -----------------------------------------------------------------

sub capture_base_state {
    my ($keep_env, $set_env, $inherited) = @_;
    FCGI::Spawn::Native::request_env_base(
        (map { exists $ENV{$_} ? ($_ => $ENV{$_}) : () } @$keep_env),
        @$set_env,
    );
    # Perl calls an embedded interpreter "-e"; between requests $0 names
    # the daemon (the process title, which ps shows, is the daemon's own:
    # src/title.rs).
    $0 = $BASE{program_name};
    $BASE{sig} = { map { $_ => $SIG{$_} } keys %SIG };
    # What a worker inherits as the master had it is kept: taking it again
    # would free the master's copy, writing to pages the two share.
    if (!$inherited || "@{ $BASE{inc} || [] }" ne "@INC") {
        $BASE{inc} = [@INC];
        %FCGI::Spawn::Loader::WORKER_INC_DIRS = map { $_ => 1 } grep { !ref } @INC;
    }
    $BASE{core_global} = FCGI::Spawn::Native::snapshot_package('CORE::GLOBAL')
        if !$inherited || !$BASE{core_global};
    FCGI::Spawn::Modules::take_loaded();
    FCGI::Spawn::Native::snapshot_signals();
    FCGI::Spawn::Native::snapshot_formats();
    if ($inherited) {
        # A worker keeps the record of the subs the master took (and kept
        # current): taking it again would write to every sub's reference
        # count, and copy every page the worker shares with the master
        # that holds one (about half of its heap).
        FCGI::Spawn::Native::record_new_code() if FCGI::Spawn::Native::code_snapshot_stale();
    }
    else {
        FCGI::Spawn::Native::snapshot_code();
    }
    FCGI::Spawn::Symbols::own_current_names();
    FCGI::Spawn::Native::request_base();
    return;
}

my $FINDBIN_FOR;    # the script FindBin was last computed for

# $0, @ARGV and FindBin for the script (%ENV was set from Rust: the
# worker's base and the request's params; $^T and rand's seed are
# enter_request's).
sub set_environment {
    my ($script) = @_;
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
    # FindBin as it would be found by this script (computed again only
    # for another script than last time: it takes a few system calls).
    if (defined &FindBin::again && ($FINDBIN_FOR // '') ne $script) {
        FindBin::again();
        $FINDBIN_FOR = $script;
    }
    return;
}

# The script's directory (cached per script).
my %DIR_OF;

sub script_directory {
    my ($script) = @_;
    return $DIR_OF{$script} //= $script =~ m{^(.*)/[^/]*\z}s ? ($1 eq '' ? '/' : $1) : '.';
}

# Fresh PerlIO handles on the descriptors Rust prepared: for a body always,
# otherwise only when the last request did not leave them exactly as bound
# (FCGI::Spawn::Native::enter_request tells): no buffered input, EOF state
# or layers survive from the previous request.
sub bind_std_handles {
    # perl warns when a read-only handle lands in the PerlIO slot it keeps
    # for stdout, which happens to STDIN in a `fork` request's child;
    # nothing is wrong then.
    no warnings 'io';
    open STDIN, '<&=', 0 or die "fcgi-spawn: cannot bind STDIN to fd 0: $!\n";
    open STDOUT, '>&=', 1 or die "fcgi-spawn: cannot bind STDOUT to fd 1: $!\n";
    # What the script prints stays in the worker until a flush or the end
    # of the request; fd 1 underneath is still the real thing.
    FCGI::Spawn::Native::std_handles_bound();
    return;
}

# Package a registry (or fork) script is compiled into: unique per path,
# valid as a name, the same for every run.
my %NAMESPACE_OF;

sub make_namespace {
    my ($script) = @_;
    return $NAMESPACE_OF{$script} //= 'FCGI::Spawn::Sandbox::' . mangled_path($script);
}

sub mangled_path {
    my ($script) = @_;
    (my $name = $script) =~ s{([^A-Za-z0-9_/])}{sprintf '_%02x', ord $1}ge;
    $name =~ s{/+}{::}g;
    $name =~ s{::(?=\d)}{::_}g;
    $name =~ s{^::}{};
    return $name;
}

# perlrun: each request compiles into a package no module in this worker
# has seen, as each CGI process has a `main` of its own: importers that
# remember the packages they served (Log::Log4perl's `:easy`, Exporter's
# cache) export into it again. One level under a package that stays
# (FCGI::Spawn::Sandbox::Run::R<n>__<path>): making and deleting a chain
# of nested packages every request cost more than the script's compile.
my $PERLRUN_SERIAL = 0;
my %FLAT_NAME_OF;

sub fresh_namespace {
    my ($script) = @_;
    my $leaf = $FLAT_NAME_OF{$script} //= do { (my $flat = mangled_path($script)) =~ s/::/__/g; $flat };
    return 'FCGI::Spawn::Sandbox::Run::R' . ++$PERLRUN_SERIAL . "__$leaf";
}

# --- compile -----------------------------------------------------------------

# The script's text and what its shebang line asks for.
sub read_source {
    my ($script) = @_;
    no warnings 'io';    # see bind_std_handles
    open my $fh, '<', $script or die "fcgi-spawn: cannot open $script: $!\n";
    # read, not readline: a readline would make this handle the "last read"
    # one, and the script's die messages would end in "<$fh> line 1".
    my $text = '';
    FCGI::Spawn::Symbols::read_whole($fh, \$text);
    my $warnings = 0;
    if ($text =~ /\A#!\S*perl\S*[ \t]+(-\S+(?:[ \t]+-\S+)*)/) {
        my $flags = $1;
        $warnings = 1 if $flags =~ /^-\w*w/ || $flags =~ /\s-\w*w/;
        if ($flags =~ /-\w*[Tt]/ && !$TAINT_WARNED{$script}++) {
            warn "fcgi-spawn: $script asks for taint mode (-T), which cannot be "
                . "switched on in a running interpreter; running it without\n";
        }
    }
    return { path => $script, text => \$text, fh => $fh, warnings => $warnings };
}

# What our @INC hook hands to `do`: a prologue, then the file itself, so
# __FILE__, line numbers, BEGIN/END and use/require behave as when perl
# runs the file directly.
#   perlrun:  the file at file scope in the sandbox package; the prologue
#             clears the "inside eval" flag `do` sets, so $^S is 0 and an
#             uncaught die ends the script like a perl program.
#   registry, fork: the file becomes the body of one sub.
# The text stops at a __DATA__ or __END__ line; the DATA handle is opened
# on the file at what follows it (open_data), as perl opens it for a main
# program. (Letting perl read the file through a source filter instead
# leaked each request's filter state in perlrun.)
sub source_for_do {
    my ($source, $package, $as_sub) = @_;
    my $script = $source->{path};
    my $switches = $source->{warnings} ? 'BEGIN { $^W = 1 } ' : '';
    # A script starts, as a new perl does, with $! and $? clear: perl's die
    # exits with $! when it is set, else with $? >> 8 (a child's status
    # left by an earlier request's waitpid).
    my $unhook = 'BEGIN { FCGI::Spawn::Runner::unhook_source(); $! = 0; $? = 0 } ';
    my $prologue = $as_sub
        ? "package $package; $unhook sub $HANDLER { $switches\n#line 1 \"$script\"\n"
        : "package $package; $unhook FCGI::Spawn::Native::clear_in_eval(); "
            . "\$FCGI::Spawn::Runner::SCRIPT_STARTED = 1; $switches\n#line 1 \"$script\"\n";
    my $text = ${ $source->{text} };
    my $epilogue = '';
    if ($text =~ /^__(END|DATA)__\b[^\n]*\n?/mg) {
        my ($marker, $data_at) = ($1, pos $text);
        substr($text, $-[0]) = '';
        # __DATA__ opens the DATA handle of the package current there,
        # __END__ main's: the script's own package here. $^H tells whether
        # `use utf8` is in force there, which gives DATA a :utf8 layer.
        my $owner = $marker eq 'DATA' ? '__PACKAGE__' : "'$package'";
        $epilogue = "\n;BEGIN { FCGI::Spawn::Runner::open_data($owner, $data_at, \$^H) }";
    }
    # A script that switches back with `package main;` means its own file
    # scope, which is the sandbox package here.
    $text =~ s/^(\s*package\s+)main(?=\s*[;{])/$1$package/mg;
    $text = $prologue . $text . $epilogue . ($as_sub ? "\n}\n" : "\n");
    return (\$text);
}

# The DATA handle of the script being compiled, at the byte after its
# __DATA__/__END__ line. Called from the compiled text's last BEGIN block.
our $COMPILING;    # the source being compiled

sub open_data {
    my ($package, $offset, $hints) = @_;
    my $data = do { no strict 'refs'; \*{"${package}::DATA"} };
    no warnings 'io';    # see bind_std_handles
    open $data, '<&', $COMPILING->{fh} or die "fcgi-spawn: cannot open DATA of $COMPILING->{path}: $!\n";
    seek $data, $offset, 0;
    binmode $data, ':utf8' if $hints & 0x00800000;    # HINT_UTF8
    return;
}

# The @INC hook that hands a script's source to `do`, while it is there.
our $SOURCE_HOOK;

# Compiles (and, at file scope, runs) the source with `do` through our
# @INC hook. $@ says how it went, as after `do FILE`.
sub do_source {
    my ($source, $package, $as_sub) = @_;
    local $COMPILING = $source;
    local $SOURCE_HOOK = sub {
        return unless $_[1] eq $VIRTUAL_FILE;
        return source_for_do($source, $package, $as_sub);
    };
    unshift @INC, $SOURCE_HOOK;
    $@ = '';
    CORE::do($VIRTUAL_FILE);    # not the loader's do: no @INC search for it
    unhook_source();
    delete $INC{$VIRTUAL_FILE};
    return;
}

# The script must see @INC as it is (and its `use lib` must stay in it): the
# prologue takes the hook out first thing, in a BEGIN block. Not from inside
# the hook: perl is walking @INC then and would use the freed entry.
sub unhook_source {
    @INC = grep { !ref || !$SOURCE_HOOK || $_ != $SOURCE_HOOK } @INC;
    return;
}

# The packages a script declares that do not exist yet: they are the
# script's, and go (perlrun) or are reset (registry) after it.
sub new_declared_packages {
    my ($source) = @_;
    return grep { !FCGI::Spawn::Symbols::stash_of($_) }
        FCGI::Spawn::Symbols::declared_packages($source->{text});
}

# --- run ---------------------------------------------------------------------

# perlrun: compile and run in one go, every request.
sub compile_and_run {
    my $source = read_source($req{script});
    # The package drop_sandbox deletes: set here only, so a request that
    # never compiled deletes nothing.
    $req{package} = $req{sandbox} = fresh_namespace($req{script});
    $req{new_packages} = [ new_declared_packages($source) ];
    script_packages($req{package}, @{ $req{new_packages} });
    local $SCRIPT_STARTED = 0;
    do_source($source, $req{package}, 0);
    # Reached when the script fell off its end. A compile error never ran
    # the prologue: report it as perl would, by dying at the top level.
    die_compile_error($@, $req{script}) if !$SCRIPT_STARTED && $@ ne '';
    return;
}

# Dies with a compile error as perl reports it for a program (what the
# script's $SIG{__DIE__}, CGI::Carp's fatalsToBrowser among them, and the
# log get). A compile that ended with errors leaves only the errors in $@
# after `do`, and no die handler ran: a program's message ends with
# "Execution of SCRIPT aborted due to compilation errors." One aborted by
# a die (a BEGIN block's, too many errors) is whole, and the handler has
# already had it: it does not get it twice.
sub die_compile_error {
    my ($error, $script) = @_;
    if ($error =~ /(?:\bfailed--compilation aborted at .* line \d+\.|has too many errors\.)\n\z/) {
        local $SIG{__DIE__};
        die $error;
    }
    die "${error}Execution of $script aborted due to compilation errors.\n";
}

# registry, fork: the compiled sub of a script, compiled again when the
# file changed (mtime, size or inode).
sub cached_handler {
    my ($script, $package) = @_;
    my @st = stat $script or die "fcgi-spawn: cannot stat $script: $!\n";
    my $stamp = "$st[9]:$st[7]:$st[1]";
    my $entry = $REGISTRY{$script};
    return $entry if $entry && $entry->{stamp} eq $stamp && !hidden_name_taken($entry) && !kept_file_changed($entry);
    if ($entry) {
        undef $entry;
        forget_cached($script);
    }
    return $REGISTRY{$script} = compile_cached($script, $package, $stamp);
}

sub compile_cached {
    my ($script, $package, $stamp) = @_;
    # The std handles as a new process has them: what the compile leaves
    # on them (formats) is the script's, taken below. A compile of its
    # own (compile_script) comes before the request resets them, after
    # the last request left its script's formats installed.
    FCGI::Spawn::Native::reset_handles();
    my $source = read_source($script);
    my @packages = ($package, new_declared_packages($source));
    my $ends_before = FCGI::Spawn::Native::end_block_count();
    my @inc_before = @INC;
    my $module_state_before = FCGI::Spawn::Modules::scalars();
    my %compile_sig;
    {
        # What the script loads while compiling (its `use` lines) is part of
        # the compiled script, not of one request.
        local $FCGI::Spawn::Loader::KEEP_LOADED = 1;
        local $FCGI::Spawn::Loader::SCRIPT_PACKAGES = { map { $_ => 1 } @packages };
        # perl's "will not stay shared" is about the registry's sub, which
        # captured_lexicals explains in the log line of its own.
        my $warn = $SIG{__WARN__};
        my $filter = sub {
            return if $_[0] =~ /^Variable "[^"]+" will not stay shared at /;
            $warn ? $warn->(@_) : warn @_;
        };
        local $SIG{__WARN__} = $filter;
        my $die = $SIG{__DIE__};
        do_source($source, $package, 1);
        # Handlers the compile installed (`use CGI::Carp qw(fatalsToBrowser)`
        # sets $SIG{__DIE__}) are the script's for each of its runs.
        $compile_sig{__DIE__} = $SIG{__DIE__} if ($SIG{__DIE__} // '') ne ($die // '');
        $compile_sig{__WARN__} = $SIG{__WARN__} if ($SIG{__WARN__} // '') ne $filter;
    }
    my $error = $@;
    my $site_inc = FCGI::Spawn::Loader::take_compiled_site_files();
    my @ends = FCGI::Spawn::Native::take_end_blocks(
        FCGI::Spawn::Native::end_block_count() - $ends_before, $script);
    my %formats = FCGI::Spawn::Native::take_formats();
    my @inc = @INC;
    @INC = @inc_before;
    my $handler = $error eq '' && $package->can($HANDLER);
    if (!$handler) {
        FCGI::Spawn::Symbols::delete_package($_) for @packages;
        FCGI::Spawn::Symbols::delete_script_names();
        die_compile_error($error, $script) if $error ne '';
        die "fcgi-spawn: $script did not compile into a handler\n";
    }
    # Named subs that capture file-scoped lexicals would keep the first
    # run's variables for ever ("Variable will not stay shared") if the
    # compiled script ran again in this process: registry runs it in a
    # child forked for each request instead (as fork isolation does), which
    # keeps it compiled once and exact; the first run in a child sees the
    # variables as compiled, as every run of a new process does.
    my @captured = FCGI::Spawn::Native::captured_lexicals($package, $handler, @ends);
    my $fork_only;
    if (@captured && $req{mode} eq 'registry') {
        $fork_only = join('; ', @captured) . ' keep file-scoped lexicals';
        warn "fcgi-spawn: $script runs in a child per request (fork isolation), not in the worker: its "
            . "$fork_only\n" unless ($FORK_ONLY{$script} // '') eq $fork_only;
        $FORK_ONLY{$script} = $fork_only;
    }
    else {
        delete $FORK_ONLY{$script};
    }
    # What the compile added to shared tables is the script's: its
    # top-level names ($main::x, a package Foo it names), and the packages
    # it declares inside existing ones. Their state is kept as compiled and
    # they are out of sight of other scripts between its runs. perl's
    # special variables ($~, $^W...) are the worker's, and so is the
    # top-level package of a module it loaded (named before it loaded:
    # `use constant Z => eval { require Compress::Zlib }`).
    FCGI::Spawn::Symbols::claim_module_names();
    my @made = grep { /\A[A-Za-z_]\w*(?:::)?\z/ && !$SPECIAL_NAMES{$_} }
        FCGI::Spawn::Symbols::script_names();
    my @made_packages = map { substr $_, 0, -2 } grep { /::\z/ } @made;
    # Its subs in the worker's packages (`sub CGI::x {...}`) likewise.
    my @code = FCGI::Spawn::Native::code_changes($script);
    FCGI::Spawn::Native::restore_code($script);
    push @packages, @made_packages;
    my $data = do { no strict 'refs'; \*{"${package}::DATA"} };
    my @subs = ($handler, map { script_subs($_) } @packages);
    my $entry = {
        once_patterns => FCGI::Spawn::Native::once_patterns($script, @subs),
        fork_only    => $fork_only,
        captured     => (@captured ? join('; ', @captured) : undef),
        stamp        => $stamp,
        handler      => $handler,
        ends         => \@ends,
        formats      => \%formats,
        warnings     => $source->{warnings},
        inc          => ("@inc" eq "@inc_before" ? undef : \@inc),
        site_inc     => (%$site_inc ? $site_inc : undef),
        sig          => (%compile_sig ? \%compile_sig : undef),
        module_state => FCGI::Spawn::Modules::changed_scalars($module_state_before),
        package_names => \@packages,
        packages     => [ map { FCGI::Spawn::Native::snapshot_package($_, 1) } @packages ],
        main_globals => [ map { \$main::{$_} } grep { !/::\z/ } @made ],
        code         => \@code,
        data         => $data,
        data_pos     => (defined fileno($data) ? tell($data) : -1),
    };
    my %nested;
    for my $declared (@packages[1 .. $#packages]) {
        my ($parent, $leaf) = $declared =~ /\A(.+)::([^:]+)\z/ or next;
        push @{ $nested{$parent} }, "${leaf}::" if !grep { $_ eq $declared } @made_packages;
    }
    $entry->{hidden} = [
        map { [ $_, FCGI::Spawn::Native::detach_symbols($_, @{ $nested{$_} }) ] } sort keys %nested
    ];
    unshift @{ $entry->{hidden} }, [ 'main', FCGI::Spawn::Native::detach_symbols('main', @made) ];
    name_hidden($entry);
    FCGI::Spawn::Symbols::own_current_names();
    return $entry;
}

# A top-level package the script's compile only named (`require Foo::Bar`
# at run time makes Foo::) is the worker's once that module has loaded into
# it: it stays in place for everyone, no longer reset or hidden.
sub release_module_packages {
    my ($entry) = @_;
    FCGI::Spawn::Symbols::claim_module_names();
    # Nothing became the worker's since the last look: nothing to release.
    return if ($entry->{owned_seen} // -1) == $FCGI::Spawn::Symbols::OWNED_GENERATION;
    $entry->{owned_seen} = $FCGI::Spawn::Symbols::OWNED_GENERATION;
    my ($main, @pairs) = @{ $entry->{hidden}[0] };
    my (%released, @still_hidden);
    while (my ($name, $glob) = splice @pairs, 0, 2) {
        if ($name =~ /::\z/ && FCGI::Spawn::Symbols::is_owned($name)) {
            $released{ substr $name, 0, -2 } = 1;
        }
        else {
            push @still_hidden, $name, $glob;
        }
    }
    return unless %released;
    $entry->{hidden}[0] = [ $main, @still_hidden ];
    name_hidden($entry);
    my @keep = grep { !$released{ $entry->{package_names}[$_] } } 0 .. $#{ $entry->{package_names} };
    $entry->{package_names} = [ @{ $entry->{package_names} }[@keep] ];
    delete $entry->{script_packages};
    $entry->{packages} = [ @{ $entry->{packages} }[@keep] ];
    return;
}

# Whether a top-level name the script keeps hidden between its runs was
# made meanwhile by someone else (a module loaded by another script): the
# script must be compiled again, against the table as it is now.
sub hidden_name_taken {
    my ($entry) = @_;
    my $names = $entry->{hidden_names} or return 0;
    return scalar grep { exists $main::{$_} } @{ $names->[0] }[ 1 .. $#{ $names->[0] } ];
}

# The names of the hidden symbols, per table: [PARENT, NAME...] each.
sub name_hidden {
    my ($entry) = @_;
    $entry->{hidden_names} = [
        map { my ($parent, @pairs) = @$_; [ $parent, @pairs[ grep { !($_ % 2) } 0 .. $#pairs ] ] }
            @{ $entry->{hidden} }
    ];
    return;
}

# A registry script's own symbols back in their tables for its run, and out
# again after it.
sub show_hidden {
    my ($entry) = @_;
    FCGI::Spawn::Native::attach_symbols(@$_) for @{ $entry->{hidden} };
    FCGI::Spawn::Native::install_code(@{ $entry->{code} }) if @{ $entry->{code} };
    return;
}

sub hide_again {
    my ($entry) = @_;
    FCGI::Spawn::Native::detach_symbols(@$_) for @{ $entry->{hidden_names} };
    return;
}

# The named subs of a package (and the packages in it).
sub script_subs {
    my ($name) = @_;
    my $stash = FCGI::Spawn::Symbols::stash_of($name) or return;
    my @subs;
    for my $symbol (keys %$stash) {
        my $glob = \$stash->{$symbol};
        next unless ref $glob eq 'GLOB';
        push @subs, *{$glob}{CODE} if *{$glob}{CODE};
        push @subs, script_subs("${name}::" . substr $symbol, 0, -2)
            if $symbol =~ /::\z/;
    }
    return @subs;
}

sub forget_cached {
    my ($script) = @_;
    # The entry (its handler, its hidden symbols) goes before its package:
    # a sub outliving its package would be renamed __ANON__::__ANON__ by
    # perl, a name left in main::. So nothing here (nor in the caller)
    # holds the entry past this line.
    delete $REGISTRY{$script} or return;
    FCGI::Spawn::Symbols::delete_package(make_namespace($script));
    return;
}

sub run_cached {
    my $entry = cached_handler($req{script}, $req{package});
    if ($entry->{fork_only} && $req{mode} eq 'registry') {
        # Found out by this compile (the script changed, and now keeps
        # file lexicals in named subs): this once, a compile of its own;
        # the next request goes to a child (run_request).
        switch_mode('perlrun');
        return compile_and_run();
    }
    $STEP_COSTS
        ? run_parts('run_script', undef, [ [ 'the compiled script back' => sub { compiled_state_back($entry) } ] ])
        : compiled_state_back($entry);
    local $^W = 1 if $entry->{warnings};
    local $FCGI::Spawn::Loader::KEEP_RUN_LOADS = 1 if $req{mode} eq 'registry';
    ($!, $?) = (0, 0);
    $entry->{handler}->();
    return;
}

# A registry script's state after its compile, back for its run: its
# symbols in their tables, its DATA at the start, its formats, the module
# settings, @INC, site libraries and %SIG handlers its compile made.
sub compiled_state_back {
    my ($entry) = @_;
    $FCGI::Spawn::Loader::SCRIPT_PACKAGES = $entry->{script_packages}
        //= { map { $_ => 1 } @{ $entry->{package_names} } };
    show_hidden($entry);
    seek $entry->{data}, $entry->{data_pos}, 0 if $entry->{data_pos} >= 0;
    FCGI::Spawn::Native::install_formats(%{ $entry->{formats} }) if %{ $entry->{formats} };
    FCGI::Spawn::Modules::set_scalars($entry->{module_state}) if %{ $entry->{module_state} };
    @INC = @{ $entry->{inc} } if $entry->{inc};
    @INC{ keys %{ $entry->{site_inc} } } = values %{ $entry->{site_inc} } if $entry->{site_inc};
    @SIG{ keys %{ $entry->{sig} } } = values %{ $entry->{sig} } if $entry->{sig};
    return;
}

# The packages that are the running script's own: plain library files
# they load go with them.
sub script_packages {
    $FCGI::Spawn::Loader::SCRIPT_PACKAGES = { map { $_ => 1 } @_ };
    return;
}

sub switch_mode {
    my ($mode) = @_;
    $req{mode} = $mode;
    $req{steps} = $MODES{$mode};
    return;
}

# --- END blocks --------------------------------------------------------------

# perlrun: the END blocks compiled by this request, in perl's order.
sub compiled_end_blocks {
    my $count = FCGI::Spawn::Native::end_block_count() - $req{ends};
    return FCGI::Spawn::Native::take_end_blocks($count, $req{script});
}

sub cached_end_blocks {
    my $entry = $REGISTRY{ $req{script} };
    return $entry ? @{ $entry->{ends} || [] } : ();
}

# --- finish ------------------------------------------------------------------

# perlrun: the request's package, the packages the script declared, its
# formats: gone, so nothing the sandbox owned stays reachable.
sub drop_sandbox {
    my @packages = @{ $req{new_packages} || [] };
    FCGI::Spawn::Symbols::delete_package($_) for grep { defined } $req{sandbox}, @packages;
    return;
}

# registry: the script's packages back to their post-compile state (which
# closes the handles the run opened on them), its main:: globals emptied,
# and all of it out of sight again.
sub reset_cached_state {
    my $entry = $REGISTRY{ $req{script} } or return;
    keep_run_loads($entry) if @FCGI::Spawn::Loader::KEPT_RUN_LOADS;
    delete @INC{ keys %{ $entry->{site_inc} } } if $entry->{site_inc};
    release_module_packages($entry);
    FCGI::Spawn::Native::restore_package($_) for grep { defined } @{ $entry->{packages} };
    FCGI::Spawn::Native::forget_once_patterns($entry->{once_patterns}) if $entry->{once_patterns};
    for my $glob (@{ $entry->{main_globals} }) {
        next unless ref $glob eq 'GLOB';
        ${ *{$glob}{SCALAR} } = undef;
        @{ *{$glob}{ARRAY} } = () if *{$glob}{ARRAY};
        %{ *{$glob}{HASH} } = () if *{$glob}{HASH};
    }
    hide_again($entry);
    return;
}

# The plain files the run loaded into the script's packages become part
# of its compiled state, as loaded (SPEC §3, registry): not loaded again,
# put back to their values as loaded before each run, loaded again with
# the script when one of them changes on disk.
sub keep_run_loads {
    my ($entry) = @_;
    my %snapshot_of;
    @snapshot_of{ @{ $entry->{package_names} } } = @{ $entry->{packages} };
    for my $kept (splice @FCGI::Spawn::Loader::KEPT_RUN_LOADS) {
        my ($file, $package, $before, $after, $path) = @$kept;
        my @snapshots = snapshots_of($package, \%snapshot_of) or next;
        if ($before && $after) {
            FCGI::Spawn::Native::merge_loaded($_, $before, $after) for @snapshots;
        }
        $entry->{site_inc}{$file} = $INC{$file};
        $entry->{kept_files}{$path} = file_stamp($path);
    }
    return;
}

# Every snapshot of the entry that puts $package back: its own, and the
# one nested in the snapshot of each package above it the script made
# (`package My::Decl;` in a script that made My::).
sub snapshots_of {
    my ($package, $snapshot_of) = @_;
    my @snapshots = grep { defined } $snapshot_of->{$package};
    my @parts = split /::/, $package;
    for my $depth (1 .. $#parts) {
        my $snapshot = $snapshot_of->{ join '::', @parts[ 0 .. $depth - 1 ] } or next;
        for my $leaf (@parts[ $depth .. $#parts ]) {
            $snapshot = FCGI::Spawn::Native::nested_snapshot($snapshot, $leaf) or last;
        }
        push @snapshots, $snapshot if $snapshot;
    }
    return @snapshots;
}

sub file_stamp {
    my @st = stat $_[0] or return '';
    return "$st[9]:$st[7]:$st[1]";
}

# Whether a file the script keeps changed on disk since it was loaded.
sub kept_file_changed {
    my ($entry) = @_;
    my $kept = $entry->{kept_files} or return 0;
    return scalar grep { file_stamp($_) ne $kept->{$_} } keys %$kept;
}

# --- restore -----------------------------------------------------------------

# STDERR as a new process has it: unix and perlio layers, the latter
# unbuffered (reset_handles marks it so). A script's extra buffering layer
# (binmode ':perlio', Capture::Tiny's re-layering) goes.
sub restore_stderr {
    binmode STDERR;
    if (join(' ', PerlIO::get_layers(*STDERR)) ne 'unix perlio') {
        binmode STDERR, ':pop' while (() = PerlIO::get_layers(*STDERR)) > 1;
        binmode STDERR, ':perlio';
    }
    FCGI::Spawn::Native::reset_handles();
    select STDERR;
    return;
}

# Returns how many signal handlers had to be put back.
sub restore_signals {
    my $restored = 0;
    for my $sig (FCGI::Spawn::Native::changed_signals(), '__WARN__', '__DIE__') {
        my $now = $SIG{$sig};
        my $was = $BASE{sig}{$sig};
        next if !defined $now && !defined $was;
        next if defined $now && defined $was && $now eq $was;
        $SIG{$sig} = $was;
        $restored++;
    }
    FCGI::Spawn::Native::snapshot_signals() if $restored;
    return $restored;
}

# What leave_request does in C, for when it cannot (read-only values): the
# assignment dies with perl's message, and the worker is replaced.
sub restore_special_variables {
    $/ = "\n";
    $\ = undef;
    $, = undef;
    $" = ' ';
    $; = "\034";
    $^A = '';
    $^L = "\f";
    $: = " \n-";
    $_ = undef;
    $^R = undef;
    @ARGV = ();
    $0 = $BASE{program_name};
    @INC = @{ $BASE{inc} };
    return;
}

# The state a worker must be in between requests; each broken rule is
# named.
sub broken_invariants {
    my @broken = FCGI::Spawn::Native::request_invariants();
    if (!FCGI::Spawn::Symbols::main_is_clean()) {
        my @extra = sort(FCGI::Spawn::Symbols::script_names());
        push @broken, 'the main:: symbol table'
            . (@extra ? ' (' . join(', ', grep { defined } @extra[0 .. 4]) . ')' : '');
    }
    return @broken;
}

# --- entry points called from Rust -------------------------------------------

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
    forget_cached($script);
    delete $NAMESPACE_OF{$script};
    return 1;
}

# The worker's settings as Rust passes them: (KEEP, ..., '--', NAME, VALUE,
# ..., '--', ROOT, ...). KEEP names the daemon's environment variables
# scripts see; NAME/VALUE pairs are set for every script; ROOTs are the
# --root directories, each ending in '/'. Everything else of the daemon's
# environment is not passed on (as php-fpm's clear_env).
sub worker_settings {
    my (@keep, @set);
    push @keep, shift @_ while @_ && $_[0] ne '--';
    shift @_;
    push @set, shift @_ while @_ && $_[0] ne '--';
    shift @_;
    @FCGI::Spawn::Loader::ROOTS = @_;
    return (\@keep, \@set);
}

# In the master before fork (--precompile), and in `fcgi-spawn check`:
# scripts compiled into the registry as a worker's first request for each
# would compile them, in the worker's environment (worker_settings). Rust
# runs begin_request, precompile_script, finish_request, end_request for
# each script between these two.
my %ENV_BEFORE_PRECOMPILE;

sub precompile_begin {
    %ENV_BEFORE_PRECOMPILE = %ENV;
    capture_base_state(worker_settings(@_));
    return 1;
}

sub precompile_end {
    %ENV = %ENV_BEFORE_PRECOMPILE;
    %ENV_BEFORE_PRECOMPILE = ();
    @FCGI::Spawn::Loader::ROOTS = ();
    return 1;
}

# The run step of a precompile: the script compiled and cached (mode
# 'registry' or 'fork'), not run. Dies with perl's message (file and line)
# when it does not compile. Returns 2 when a registry script's named subs
# capture file lexicals (it will run in a child per request), 1 otherwise.
sub precompile_script {
    my ($mode) = @_;
    $req{mode} = $mode;
    # Whatever the compile ends in, nothing is left to finish: a compiled
    # script is left out of sight in its post-compile state (what
    # reset_cached_state makes of it after each run), a failed or refused
    # one is gone.
    $req{steps} = $MODES{precompile};
    my $entry = cached_handler($req{script}, $req{package});
    return $entry->{fork_only} ? 2 : 1;
}

# The warm run of a precompile (--precompile-warm), after precompile_script
# cached a registry script: Rust then runs it (run_script, run_end_blocks)
# as a worker would, and finish_request and end_request put its package
# and the interpreter back as after any request. What its run loads from
# the system @INC stays loaded, shared by the workers.
sub precompile_warm {
    my $entry = $REGISTRY{ $req{script} };
    die "fcgi-spawn: $req{script} is not compiled: not warmed\n" if !$entry;
    # Run once in this process, a script whose named subs keep file
    # lexicals would leave them to every later run (and fork's children).
    die "fcgi-spawn: $req{script} is not warmed: its $entry->{captured} keep file-scoped lexicals, "
        . "and a run in the master would leave them to every request\n"
        if $entry->{captured};
    switch_mode('registry');
    return 1;
}

# Once in each worker, after fork (arguments: see worker_settings).
sub init_worker {
    my ($keep, $set) = worker_settings(@_);
    srand();
    close STDIN;
    close STDOUT;
    select STDERR;
    # A vanished client closes the response pipe; the script's next write
    # then ends it (children it execs get the default disposition back).
    $SIG{PIPE} = \&client_gone;
    capture_base_state($keep, $set, 'inherited');
    return 1;
}

# SIGPIPE: the client went away or sent FCGI_ABORT_REQUEST (the daemon
# logged it: nothing to add), the request timed out, or the script wrote to
# a pipe of its own with no reader. The last two log where the script was
# (the slow spot, for a timeout).
sub client_gone {
    my $why = FCGI::Spawn::Native::stop_reason();
    # A stop that arrives after the script ended is not for anyone.
    return unless defined $why;
    print STDERR 'fcgi-spawn: script stopped ('
        . ($why eq 'timeout' ? 'timed out' : 'SIGPIPE') . ')'
        . Carp::longmess('')
        if $why ne 'client';
    exit 0;
}

# slowlog_timeout: where the running script is, as php-fpm's slowlog does
# it: each sub it is in, innermost first, with the file and line it is at.
# Called between two of the script's ops by the glue's signal hook (no
# signal reaches the script); the script then runs on.
sub slow_request {
    my @frames;
    my $sandbox = defined $req{package} ? "$req{package}::" : "\0";
    # Frame 0 is this sub, called by the glue's eval at the script's spot.
    for (my $i = 1; my @here = caller $i; $i++) {
        my @in = caller $i + 1;
        my $sub = !@in || runner_file($in[1]) ? 'main program' : $in[3];
        $sub =~ s/^\Q$sandbox\E/main::/;
        push @frames, "  $sub at $here[1] line $here[2]\n";
        last if $sub eq 'main program';
    }
    print STDERR "fcgi-spawn: slow request; backtrace, innermost first:\n", @frames;
    return;
}

# True for a file of the runner itself (what calls the script).
my $RUNNER_DIR = (__FILE__ =~ m{\A(.*/)[^/]+\z})[0] // __FILE__;
sub runner_file {
    my ($file) = @_;
    return substr($file, 0, length $RUNNER_DIR) eq $RUNNER_DIR;
}

# In the worker, before the request (fork mode: before it forks the
# request's child; registry: a script met for the first time):
# ($script, $mode; %ENV set from Rust) the cached compiled script (die and
# exit trapped, what it prints dropped: the run then compiles again and
# meets them as a perl program would, with the script's own die handlers
# and the request set up).
sub compile_script {
    my ($script, $mode) = @_;
    FCGI::Spawn::Stats::reload_changed() if $FCGI::Spawn::Stats::ON;
    %req = (
        script  => $script,
        package => make_namespace($script),
        ends    => FCGI::Spawn::Native::end_block_count(),
    );
    # The mode's steps too: a BEGIN block that calls exit ends the request
    # here, and its END blocks and finish run as the mode's.
    switch_mode($mode // 'fork');
    FCGI::Spawn::Loader::begin_request();
    # What compiling runs (BEGIN blocks, `use FindBin`) sees the request,
    # as a registry script's first compile does.
    set_environment($script);
    FCGI::Spawn::Native::enter_request(script_directory($script), 1);
    cached_handler($script, $req{package});
    return 1;
}

my @BEGIN_PARTS = (
    # `stats`: changed modules are the worker's again before the request
    # (fork mode: the worker did it in compile_script).
    [ 'changed modules' => sub {
        FCGI::Spawn::Stats::reload_changed() if $FCGI::Spawn::Stats::ON && $req{mode} ne 'fork';
    } ],
    [ 'loader' => \&FCGI::Spawn::Loader::begin_request ],
    # The request's child (fork mode) is a plain CGI process: SIGPIPE ends
    # it, and %SIG shows nothing set, as in a new perl.
    [ 'signals' => sub { delete $SIG{PIPE} if $req{mode} eq 'fork' } ],
    [ 'environment' => sub {
        set_environment($req{script});
        $req{has_body} = ($ENV{CONTENT_LENGTH} // '') =~ /[1-9]/;
    } ],
    # $^T, rand's seed, cwd, and STDIN and STDOUT if they are as bound.
    [ 'process' => sub {
        FCGI::Spawn::Native::enter_request(script_directory($req{script}), $req{has_body})
            or bind_std_handles();
    } ],
);


# Before the script: ($script, $isolation); %ENV is already the request's.
sub begin_request {
    my ($script, $mode) = @_;
    %req = (
        script  => $script,
        package => make_namespace($script),
        ends    => FCGI::Spawn::Native::end_block_count(),
    );
    switch_mode($mode);
    run_parts('begin_request', undef, \@BEGIN_PARTS);
    return 1;
}

# The script itself. Called with die untrapped: it ends like a perl program.
sub run_script {
    $req{steps}{run}->();
    return end_blocks_due();
}

# A worker's request: its set-up (begin_request) and the script, in one
# call (a die in the set-up ends the request as a die of the script's
# would). Returns 1 when END blocks wait to run (run_end_blocks), 0 when
# there are none; 2: for a child to run; 3: compile it first ($compiled
# says that was done).
sub run_request {
    my ($script, $mode, $compiled) = @_;
    # registry: a script met for the first time is compiled first, in a
    # call of its own (compile_script, from Rust): what a BEGIN block
    # prints or an exit in one is not this run's (the run compiles again
    # and meets them with the request set up), and the compile tells
    # whether the script can run twice in one process. One that cannot
    # goes to a child (Rust forks it, as in fork isolation) before
    # anything is set up here.
    return 3 if $mode eq 'registry' && !$compiled && !$REGISTRY{$script};
    return 2 if $mode eq 'registry' && $FORK_ONLY{$script} && $REGISTRY{$script};
    begin_request($script, $mode);
    $req{steps}{run}->();
    return end_blocks_due();
}

sub end_blocks_due {
    return 1 if FCGI::Spawn::Native::end_block_count() != ($req{ends} // 0);
    my $entry = defined $req{script} ? $REGISTRY{ $req{script} } : undef;
    return $entry && $entry->{ends} && @{ $entry->{ends} } ? 1 : 0;
}

# END blocks the script compiled, in perl's order. Called with exit trapped.
our $IN_END_BLOCKS = 0;

sub run_end_blocks {
    local $IN_END_BLOCKS = 1;
    my @blocks = $req{steps}{end_blocks}->();
    $req{ends} = FCGI::Spawn::Native::end_block_count();
    for my $block (@blocks) {
        eval { $block->(); 1 } or warn $@;
    }
    return 1;
}

# A child the script forked ends (it fell off the script, called exit or
# died): the script's END blocks run in it, as at that child process's
# exit; not again if it was forked while they ran.
sub end_forked_child {
    run_end_blocks() unless $IN_END_BLOCKS;
    return 1;
}

# fork mode, the request's child about to exit: ties on the std handles,
# the script's packages and top-level names go, and with them the objects
# only they hold (their DESTROY runs, as in global destruction at a CGI
# process's exit); so does the request state modules keep (CGI.pm's saved
# request holds its upload temp files, which File::Temp removes in
# DESTROY: without this each upload left its file in TMPDIR).
sub end_request_child {
    # A tie over a std handle (a gzip or buffering layer) finishes the page
    # in its DESTROY, as global destruction would run it.
    for my $handle (\*STDOUT, \*STDERR, \*STDIN) { untie *$handle if tied *$handle }
    # The compiled entry goes first: its snapshot holds the package's
    # scalars (to put them back), and with them the objects in them.
    my $entry = defined $req{script} ? delete $REGISTRY{ $req{script} } : undef;
    my @packages = $entry && $entry->{package_names} ? @{ $entry->{package_names} } : ($req{package});
    undef $entry;
    FCGI::Spawn::Symbols::delete_package($_) for grep { defined } @packages;
    FCGI::Spawn::Symbols::delete_script_names();
    FCGI::Spawn::Modules::reset_request_state();
    return 1;
}

# The script is over: before its response ends, what process exit would do
# (each part trapped; a failure is for end_request to report).
my $UNTIE_PART = [ 'untying the std handles' => \&untie_std_handles ];

my @FINISH_PARTS = (
    [ "dropping the script's top-level names" => \&FCGI::Spawn::Symbols::delete_script_names ],
    [ "putting back the worker's subs it replaced" => \&restore_worker_code ],
    # As process exit closes them: what the script left in STDIN's buffer,
    # layers it pushed, a STDOUT it reopened (still holding the response
    # pipe) go; kept only when exactly as bound.
    [ 'the std handles' => \&close_std_handles ],
);
# Each mode's finish, made once: the mode's own, then the common parts.
$_->{finish_parts} = [ [ "dropping the script's symbols" => $_->{finish} ], @FINISH_PARTS ] for values %MODES;

sub finish_request {
    my @failed;
    run_parts('finish_request', \@failed, [$UNTIE_PART]) if FCGI::Spawn::Native::finish_std_handles();
    run_parts('finish_request', \@failed, $req{steps}{finish_parts});
    $req{failed} = \@failed if @failed;
    return 1;
}

# A tie over a std handle finishes its page in UNTIE or DESTROY (a gzip
# trailer), as process exit would have it.
sub untie_std_handles {
    for my $handle (\*STDOUT, \*STDERR, \*STDIN) { untie *$handle if tied *$handle }
    return;
}

sub restore_worker_code {
    FCGI::Spawn::Native::restore_code(FCGI::Spawn::Loader::request_files($req{script}));
    return;
}

sub close_std_handles {
    FCGI::Spawn::Native::close_std_handles($req{has_body});
    return;
}

# What end_request does in Perl, for what the glue could not put back
# itself (FCGI::Spawn::Native::leave_request names them).
my %LEAVE_PARTS = (
    end_blocks => [ 'END blocks left' => \&take_end_blocks_left ],
    stderr => [ 'STDERR' => \&restore_stderr ],
    signals => [ 'signals' => sub { $req{signals} = restore_signals() } ],
    # Modules perl loaded by itself (IO::File for STDOUT->flush).
    code => [ 'code records' => \&FCGI::Spawn::Native::record_new_code ],
    core_global => [ 'CORE::GLOBAL' => sub { FCGI::Spawn::Native::restore_package($BASE{core_global}) } ],
    invariants => [ 'invariants' => sub { $req{check} = 1 } ],
    special => [ 'special variables' => \&restore_special_variables ],
);

my @END_PARTS = (
    [ 'module state' => \&FCGI::Spawn::Modules::reset_request_state ],
    [ 'site files' => \&FCGI::Spawn::Loader::forget_loaded ],
);

sub take_end_blocks_left {
    my $left = FCGI::Spawn::Native::end_block_count() - ($req{ends} // 0);
    FCGI::Spawn::Native::take_end_blocks($left, $req{script}) if $left > 0 && defined $req{script};
    return;
}

# After the response: puts everything back and checks it. Returns 1 when
# signal handlers were put back (Rust re-installs its own); dies, naming
# what is wrong, when this worker cannot vouch for its state and must be
# replaced.
sub end_request {
    my @failed = $req{failed} ? @{ $req{failed} } : ();
    my @parts = FCGI::Spawn::Native::leave_request($BASE{program_name}, $req{ends} // 0);
    run_parts('end_request', \@failed, @parts ? [ @END_PARTS, map { $LEAVE_PARTS{$_} } @parts ] : \@END_PARTS);
    my @broken = $req{check} ? broken_invariants() : ();
    log_step_costs();
    my $script = $req{script} // '(none)';
    my $signals = $req{signals};
    %req = ();
    if (@failed || @broken) {
        chomp @failed;
        die "the state after $script could not be restored ("
            . join('; ', @failed, map { "$_ not restored" } @broken) . ")\n";
    }
    return $signals ? 1 : 0;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Runner - runs one CGI script per request inside an fcgi-spawn worker

=head1 DESCRIPTION

Loaded by the fcgi-spawn daemon into its embedded interpreter; not meant to
be used from scripts. For every request the worker calls
C<begin_request>, C<run_script>, C<run_end_blocks>, C<finish_request>,
sends the response, then calls C<end_request>. In C<fork> mode it calls
C<compile_script> first and runs the script's steps in a child process.

In C<perlrun> mode C<run_script> compiles the file at file scope into the
package returned by C<make_namespace>: through an C<@INC> hook, C<do>
reads the real file after a one-line prologue, so C<__FILE__>, line numbers,
C<__DATA__>/C<__END__>, C<BEGIN> and C<END> blocks and file-scoped lexicals
behave as in a fresh perl. The prologue clears the interpreter's
"inside eval" flag, so C<$^S> is 0 and an uncaught C<die> ends the script the
way it ends a perl program (message on STDERR, exit status 255).

In C<registry> and C<fork> modes the file becomes one sub, compiled once
per worker; before each run the package is as it was right after the
compile (see C<FCGI::Spawn::Native::restore_package>), and CGI.pm keeps the
pragmas the script's C<use CGI> line set.

=cut

