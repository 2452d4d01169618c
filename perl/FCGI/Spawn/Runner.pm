package FCGI::Spawn::Runner;

# The Perl half of the request runner: the entry points Rust calls and the
# table of the isolation modes. A request goes through the same named steps
# in every isolation mode (after ModPerl::RegistryCooker); a row per mode
# (%MODES) picks the implementation of the steps that differ, and says what
# else sets the mode apart:
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
# The steps' work is done in modules of one job each: FCGI::Spawn::Compile
# (a script's file compiled as perl compiles a program), ::Registry (the
# compiled scripts of registry and fork, and their state put back),
# ::Restore (the worker put back after a request), ::Request (the request
# being served, which they share, and how a step runs its parts).
#
# Rust calls the entry points at the bottom, in that order. It has already
# made file descriptors 0/1/2 the request's body and the worker's stdout
# and stderr pipes before begin_request runs.

use strict;
use warnings;

use Carp ();

our $VERSION = '0.1.0';

# The request being served (FCGI::Spawn::Request).
our %req;
*req = \%FCGI::Spawn::Request::req;

# $^X names the embedding daemon; scripts that start another perl with it
# (`system $^X, ...`, Capture::Tiny's tee) need the perl a CGI server runs.
{
    require Config;
    my $perl = $Config::Config{perlpath};
    $^X = $perl if defined $perl && -x $perl;
}

# From here on every `require` and `do` goes through the loader: the
# preloads' too, so that the top-level names any module makes while it
# loads, at start or at run time, are known as the worker's.
{
    no warnings 'once';
    *CORE::GLOBAL::require = \&FCGI::Spawn::Loader::script_require;
    *CORE::GLOBAL::do = \&FCGI::Spawn::Loader::script_do;
}

# --- the steps that differ per isolation mode --------------------------------

# Each mode's row: what its begin_request adds to the common set-up, its
# run, end_blocks and finish steps, and what else sets it apart. The
# parts of finish_request are made into a list once (finish_parts), below.
my %MODES = (
    perlrun => {
        reload_modules => 1,
        run        => \&compile_and_run,
        end_blocks => \&compiled_end_blocks,
        finish     => \&drop_sandbox,
    },
    registry => {
        reload_modules => 1,
        run        => \&FCGI::Spawn::Registry::run_cached,
        end_blocks => \&FCGI::Spawn::Registry::cached_end_blocks,
        finish     => \&FCGI::Spawn::Registry::reset_cached_state,
        # A script met for the first time is compiled in a call of its own
        # (compile_script, from Rust) before anything is set up for its run
        # (run_request).
        compile_first => 1,
        # The compiled sub runs again and again in this process, which a
        # script whose named subs keep file-scoped lexicals cannot do: such
        # a script runs in a child per request (run_request; Rust forks it,
        # as in fork isolation), and the request whose compile found it out
        # runs it by this step, this once.
        captured_lexicals => \&run_once_at_file_scope,
        # The plain files its run loads into its own packages join its
        # compiled state (FCGI::Spawn::Loader's KEEP_RUN_LOADS).
        keep_run_loads => 1,
    },
    # Compiled ahead of any request (precompile_script), never run. Its
    # begin_request was the mode's it compiles for.
    precompile => {
        run        => sub { },
        end_blocks => sub { () },
        finish     => sub { },
    },
    # In the request's child, which exits after it: process exit does the
    # finishing. The worker compiled the script before it forked the child
    # (compile_script), changed modules reloaded then; the child is a plain
    # CGI process, with SIGPIPE's default action.
    fork => {
        default_sigpipe => 1,
        run        => \&FCGI::Spawn::Registry::run_cached,
        end_blocks => \&FCGI::Spawn::Registry::cached_end_blocks,
        finish     => sub { },
    },
);

sub switch_mode {
    my ($mode) = @_;
    $req{mode} = $mode;
    $req{steps} = $MODES{$mode};
    return;
}

# --- prepare -----------------------------------------------------------------

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

# --- perlrun's steps ---------------------------------------------------------

# perlrun: compile and run in one go, every request.
sub compile_and_run {
    my $source = FCGI::Spawn::Compile::file_scope_source($req{script});
    # The package drop_sandbox deletes: set here only, so a request that
    # never compiled deletes nothing.
    $req{package} = $req{sandbox} = FCGI::Spawn::Compile::fresh_namespace($req{script});
    $req{new_packages} = [ FCGI::Spawn::Compile::new_declared_packages($source) ];
    script_packages($req{package}, @{ $req{new_packages} });
    local $FCGI::Spawn::Compile::SCRIPT_STARTED = 0;
    FCGI::Spawn::Compile::do_source($source, $req{package}, 0);
    # Reached when the script fell off its end. A compile error never ran
    # the prologue: report it as perl would, by dying at the top level.
    FCGI::Spawn::Compile::die_compile_error($@, $req{script})
        if !$FCGI::Spawn::Compile::SCRIPT_STARTED && $@ ne '';
    return;
}

# The packages that are the running script's own: plain library files
# they load go with them.
sub script_packages {
    $FCGI::Spawn::Loader::SCRIPT_PACKAGES = { map { $_ => 1 } @_ };
    return;
}

# registry: a script this request's compile found to keep file lexicals in
# named subs (it changed on disk): this once, compiled and run at file
# scope, as perlrun does; the next request goes to a child (run_request).
sub run_once_at_file_scope {
    switch_mode('perlrun');
    return compile_and_run();
}

# perlrun: the END blocks compiled by this request, in perl's order.
sub compiled_end_blocks {
    my $count = FCGI::Spawn::Native::end_block_count() - $req{ends};
    return FCGI::Spawn::Native::take_end_blocks($count, $req{script});
}

# perlrun: the request's package, the packages the script declared, its
# formats: gone, so nothing the sandbox owned stays reachable. What they,
# the packages of the site files it loaded (deleted in end_request) and
# its main:: names hold goes first, while all of the script's code is
# there (an object's DESTROY may be a sub of a package deleted here), as
# under CGI, where global destruction frees no code.
sub drop_sandbox {
    FCGI::Spawn::Native::release_package_data($_, 1)
        for grep { defined } $req{sandbox}, @{ $req{new_packages} || [] };
    FCGI::Spawn::Loader::release_loaded() if @FCGI::Spawn::Loader::LOADED;
    FCGI::Spawn::Symbols::release_script_names();
    FCGI::Spawn::Compile::drop_fresh_namespace($req{sandbox}) if defined $req{sandbox};
    FCGI::Spawn::Symbols::delete_package($_) for @{ $req{new_packages} || [] };
    return;
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
    FCGI::Spawn::Restore::capture_base_state(worker_settings(@_));
    return 1;
}

sub warm_up_end {
    my ($script) = @_;
    %ENV = %ENV_BEFORE_WARM_UP;
    %ENV_BEFORE_WARM_UP = ();
    @FCGI::Spawn::Loader::ROOTS = ();
    FCGI::Spawn::Registry::forget_cached($script);
    FCGI::Spawn::Compile::forget_namespace($script);
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
    FCGI::Spawn::Restore::capture_base_state(worker_settings(@_));
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
    my $entry = do {
        # The compile is the mode's: whether the compiled sub runs again
        # in this process is in the mode's row (captured_lexicals).
        local $req{steps} = $MODES{$mode};
        FCGI::Spawn::Registry::cached_handler($req{script}, $req{package});
    };
    return $entry->{fork_only} ? 2 : 1;
}

# The warm run of a precompile (--precompile-warm), after precompile_script
# cached a registry script: Rust then runs it (run_script, run_end_blocks)
# as a worker would, and finish_request and end_request put its package
# and the interpreter back as after any request. What its run loads from
# the system @INC stays loaded, shared by the workers.
sub precompile_warm {
    my $entry = $FCGI::Spawn::Registry::REGISTRY{ $req{script} };
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
    FCGI::Spawn::Restore::capture_base_state($keep, $set, 'inherited');
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

# True for a file of the runner itself (FCGI/Spawn/*.pm: what calls the
# script).
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
        package => FCGI::Spawn::Compile::make_namespace($script),
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
    FCGI::Spawn::Registry::cached_handler($script, $req{package});
    return 1;
}

# Before the script: ($script, $isolation); %ENV is already the request's.
# ($steps: the mode's row, when the caller has it already.) Straight
# through rather than a list of parts: a sub call each cost more than most
# of them do (about 5,000 instructions a request together).
sub begin_request {
    my ($script, $mode, $steps) = @_;
    $steps //= $MODES{$mode};
    %req = (
        script  => $script,
        package => FCGI::Spawn::Compile::make_namespace($script),
        ends    => FCGI::Spawn::Native::end_block_count(),
        mode    => $mode,
        steps   => $steps,
    );
    # `stats`: changed modules are the worker's again before the request.
    FCGI::Spawn::Stats::reload_changed() if $steps->{reload_modules} && $FCGI::Spawn::Stats::ON;
    # %INC as the worker has it between requests, taken before its first.
    FCGI::Spawn::Loader::begin_request() unless %FCGI::Spawn::Loader::WORKER_INC;
    # SIGPIPE ends the process, and %SIG shows nothing set, as in a new perl.
    delete $SIG{PIPE} if $steps->{default_sigpipe};
    set_environment($script);
    $req{has_body} = ($ENV{CONTENT_LENGTH} // '') =~ /[1-9]/;
    # $^T, rand's seed, cwd, and STDIN and STDOUT if they are as bound.
    FCGI::Spawn::Native::enter_request(script_directory($script), $req{has_body}) or bind_std_handles();
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
    my $steps = $MODES{$mode};
    # registry: a script met for the first time is compiled first, in a
    # call of its own (compile_script, from Rust): what a BEGIN block
    # prints or an exit in one is not this run's (the run compiles again
    # and meets them with the request set up), and the compile tells
    # whether the script can run twice in one process. One that cannot
    # goes to a child (Rust forks it, as in fork isolation) before
    # anything is set up here.
    return 3 if $steps->{compile_first} && !$compiled && !$FCGI::Spawn::Registry::REGISTRY{$script};
    return 2 if $steps->{captured_lexicals}
        && $FCGI::Spawn::Registry::FORK_ONLY{$script} && $FCGI::Spawn::Registry::REGISTRY{$script};
    begin_request($script, $mode, $steps);
    $steps->{run}->();
    return end_blocks_due();
}

sub end_blocks_due {
    return 1 if FCGI::Spawn::Native::end_block_count() != ($req{ends} // 0);
    my $entry = defined $req{script} ? $FCGI::Spawn::Registry::REGISTRY{ $req{script} } : undef;
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
# what the script's packages hold and its top-level names go, and with
# them the objects only they hold (their DESTROY runs, as in global
# destruction at a CGI process's exit); so does the request state modules
# keep (CGI.pm's saved request holds its upload temp files, which
# File::Temp removes in DESTROY: without this each upload left its file in
# TMPDIR). The compiled script and the registry's records of it stay as
# they are: freeing them would only copy their pages from the worker (a
# 5,000-line script's: 1,200 pages, 7 ms a request).
sub end_request_child {
    # A tie over a std handle (a gzip or buffering layer) finishes the page
    # in its DESTROY, as global destruction would run it.
    for my $handle (\*STDOUT, \*STDERR, \*STDIN) { untie *$handle if tied *$handle }
    my $entry = defined $req{script} ? $FCGI::Spawn::Registry::REGISTRY{ $req{script} } : undef;
    my @packages = $entry && $entry->{package_names} ? @{ $entry->{package_names} } : ($req{package});
    # First what the entry holds of the script's variables: the snapshots'
    # copies of its packages' values as compiled (and references to the
    # variables, which would keep them alive), the file lexicals a BEGIN
    # block set, the %SIG handlers and module settings its compile made,
    # what its top-level names (globs in main::, which it keeps) hold.
    if ($entry) {
        FCGI::Spawn::Native::release_snapshot_data($_) for grep { defined } @{ $entry->{packages} };
        delete @$entry{qw(lexicals sig module_state)};
        FCGI::Spawn::Native::release_glob_data(@{ $entry->{main_globals} });
    }
    # Its named subs hold variables only when its compile found them
    # keeping file lexicals or `state` variables.
    my $subs_hold = !$entry || $entry->{captured} || ($entry->{state_vars} && @{ $entry->{state_vars}[0] });
    undef $entry;
    FCGI::Spawn::Native::release_package_data($_, $subs_hold) for grep { defined } @packages;
    FCGI::Spawn::Loader::release_loaded() if @FCGI::Spawn::Loader::LOADED;
    FCGI::Spawn::Symbols::delete_script_names();
    FCGI::Spawn::Modules::reset_request_state();
    return 1;
}

# The script is over: before its response ends, what process exit would do
# (each part trapped; a failure is for end_request to report).
my $UNTIE_PART = [ 'untying the std handles' => \&FCGI::Spawn::Restore::untie_std_handles ];

my @FINISH_PARTS = (
    [ "dropping the script's top-level names" => \&FCGI::Spawn::Symbols::delete_script_names ],
    [ "putting back the worker's subs it replaced" => \&FCGI::Spawn::Restore::restore_worker_code ],
    # As process exit closes them: what the script left in STDIN's buffer,
    # layers it pushed, a STDOUT it reopened (still holding the response
    # pipe) go; kept only when exactly as bound.
    [ 'the std handles' => \&FCGI::Spawn::Restore::close_std_handles ],
);
# Each mode's finish, made once: the mode's own, then the common parts.
$_->{finish_parts} = [ [ "dropping the script's symbols" => $_->{finish} ], @FINISH_PARTS ] for values %MODES;

sub finish_request {
    my @failed;
    FCGI::Spawn::Request::run_parts('finish_request', \@failed, [$UNTIE_PART])
        if FCGI::Spawn::Native::finish_std_handles();
    FCGI::Spawn::Request::run_parts('finish_request', \@failed, $req{steps}{finish_parts});
    $req{failed} = \@failed if @failed;
    return 1;
}

# What end_request does in Perl, for what the glue could not put back
# itself (FCGI::Spawn::Native::leave_request names them).
my %LEAVE_PARTS = (
    end_blocks => [ 'END blocks left' => \&FCGI::Spawn::Restore::take_end_blocks_left ],
    stderr => [ 'STDERR' => \&FCGI::Spawn::Restore::restore_stderr ],
    signals => [ 'signals' => sub { $req{signals} = FCGI::Spawn::Restore::restore_signals() } ],
    # Modules perl loaded by itself (IO::File for STDOUT->flush).
    code => [ 'code records' => \&FCGI::Spawn::Native::record_new_code ],
    core_global => [ 'CORE::GLOBAL' => \&FCGI::Spawn::Restore::restore_core_global ],
    invariants => [ 'invariants' => sub { $req{check} = 1 } ],
    special => [ 'special variables' => \&FCGI::Spawn::Restore::restore_special_variables ],
);

my @END_PARTS = (
    [ 'module state' => \&FCGI::Spawn::Modules::reset_request_state ],
    [ 'site files' => \&FCGI::Spawn::Loader::forget_loaded ],
);

# After the response: puts everything back and checks it. Returns 1 when
# signal handlers were put back (Rust re-installs its own); dies, naming
# what is wrong, when this worker cannot vouch for its state and must be
# replaced.
sub end_request {
    my @failed = $req{failed} ? @{ $req{failed} } : ();
    my @parts = FCGI::Spawn::Native::leave_request($FCGI::Spawn::Restore::BASE{program_name}, $req{ends} // 0);
    FCGI::Spawn::Request::run_parts('end_request', \@failed,
        @parts ? [ @END_PARTS, map { $LEAVE_PARTS{$_} } @parts ] : \@END_PARTS);
    my @broken = $req{check} ? FCGI::Spawn::Restore::broken_invariants() : ();
    FCGI::Spawn::Request::log_step_costs() if $FCGI::Spawn::Request::STEP_COSTS;
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

A table per isolation mode (C<perlrun>, C<registry>, C<fork>) picks the
steps that differ. In C<perlrun> mode C<run_script> compiles the file at
file scope into a fresh package (L<FCGI::Spawn::Compile>); in C<registry>
and C<fork> modes the file becomes one sub, compiled once per worker
(L<FCGI::Spawn::Registry>). After the response, L<FCGI::Spawn::Restore>
puts the worker back.

=cut

