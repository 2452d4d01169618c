package FCGI::Spawn::Registry;

# The registry: in `registry` and `fork` isolation a script is compiled
# once per worker into one sub in a package of its own (by
# FCGI::Spawn::Compile), and compiled again only when its file, or a file
# its runs keep, changes on disk (cached_handler). The compile is a
# sequence of named steps (compile_cached); what they record makes the
# entry: the sub, its END blocks, formats, @INC, %SIG handlers, the
# snapshots of its packages. Its top-level names are out of sight of
# other scripts between its runs (hidden, shown for its runs). Before each
# run the script's state is put back as it was right after the compile
# (compiled_state_back), after the run its packages are reset
# (reset_cached_state), so AWStats' tables of thousands of entries cost
# only what a run changed.

use strict;
use warnings;

our $VERSION = '0.1.0';

# The request being served (FCGI::Spawn::Request).
our %req;
*req = \%FCGI::Spawn::Request::req;

our %REGISTRY;        # script path => compiled entry (registry, fork)
our %FORK_ONLY;       # script path => why: registry runs it in a child

# Names forced into main:: whatever the package, and other special globals.
my %SPECIAL_NAMES = map { $_ => 1 }
    qw(STDIN STDOUT STDERR ARGV ARGVOUT ENV INC SIG _ a b);

# --- the cache ---------------------------------------------------------------

# registry, fork: the compiled sub of a script, compiled again when the
# file changed (mtime, size or inode).
sub cached_handler {
    my ($script, $package) = @_;
    my $stamp = FCGI::Spawn::Native::file_stamp($script) // die "fcgi-spawn: cannot stat $script: $!\n";
    my $entry = $REGISTRY{$script};
    return $entry if $entry && $entry->{stamp} eq $stamp
        && !($entry->{hides_main} && hidden_name_taken($entry))
        && !($entry->{kept_files} && kept_file_changed($entry));
    if ($entry) {
        undef $entry;
        forget_cached($script);
    }
    return $REGISTRY{$script} = compile_cached($script, $package, $stamp);
}

sub forget_cached {
    my ($script) = @_;
    # The entry (its handler, its hidden symbols) goes before its package:
    # a sub outliving its package would be renamed __ANON__::__ANON__ by
    # perl, a name left in main::. So nothing here (nor in the caller)
    # holds the entry past this line.
    my $entry = delete $REGISTRY{$script} or return;
    FCGI::Spawn::Native::retire_snapshot($_) for grep { defined } @{ $entry->{packages} };
    undef $entry;
    FCGI::Spawn::Symbols::delete_package(FCGI::Spawn::Compile::make_namespace($script));
    return;
}

# --- compile -----------------------------------------------------------------

# The script compiled into an entry of the registry, in named steps (after
# ModPerl::RegistryCooker); each reads and adds to the compile's record,
# $c, which goes when the entry is made.
sub compile_cached {
    my ($script, $package, $stamp) = @_;
    # The std handles as a new process has them: what the compile leaves
    # on them (formats) is the script's, taken below. A compile of its
    # own (compile_script) comes before the request resets them, after
    # the last request left its script's formats installed.
    FCGI::Spawn::Native::reset_handles();
    my $source = FCGI::Spawn::Compile::read_source($script);
    my $c = {
        script   => $script,
        package  => $package,
        source   => $source,
        packages => [ $package, FCGI::Spawn::Compile::new_declared_packages($source) ],
    };
    note_state_before_compile($c);
    compile_as_sub($c);
    take_what_the_compile_left($c);
    find_handler($c);
    run_in_child_if_captured($c);
    take_script_names($c);
    my $entry = new_entry($c, $stamp);
    hide_script_symbols($entry, $c);
    FCGI::Spawn::Symbols::own_current_names();
    return $entry;
}

# What the compile may change of the shared state, before it: END blocks,
# @INC, module settings.
sub note_state_before_compile {
    my ($c) = @_;
    $c->{ends_before} = FCGI::Spawn::Native::end_block_count();
    $c->{inc_before} = [@INC];
    $c->{module_state_before} = FCGI::Spawn::Modules::scalars();
    return;
}

# The file compiled as the body of one sub. What the script loads while
# compiling (its `use` lines) is part of the compiled script, not of one
# request; %SIG handlers the compile installs are the script's. $c->{error}:
# the compile's $@.
sub compile_as_sub {
    my ($c) = @_;
    local $FCGI::Spawn::Loader::KEEP_LOADED = 1;
    local $FCGI::Spawn::Loader::SCRIPT_PACKAGES = { map { $_ => 1 } @{ $c->{packages} } };
    # perl's "will not stay shared" is about the registry's sub, which
    # captured_lexicals explains in the log line of its own.
    my $warn = $SIG{__WARN__};
    my $filter = sub {
        return if $_[0] =~ /^Variable "[^"]+" will not stay shared at /;
        $warn ? $warn->(@_) : warn @_;
    };
    local $SIG{__WARN__} = $filter;
    my $die = $SIG{__DIE__};
    FCGI::Spawn::Compile::do_source($c->{source}, $c->{package}, 1);
    # Handlers the compile installed (`use CGI::Carp qw(fatalsToBrowser)`
    # sets $SIG{__DIE__}) are the script's for each of its runs.
    my %sig;
    $sig{__DIE__} = $SIG{__DIE__} if ($SIG{__DIE__} // '') ne ($die // '');
    $sig{__WARN__} = $SIG{__WARN__} if ($SIG{__WARN__} // '') ne $filter;
    $c->{sig} = \%sig;
    $c->{error} = $@;
    return;
}

# What the compile left in shared places that is the script's: the site
# libraries it loaded, its END blocks, the formats it defined on the std
# handles, the @INC it made (the worker's @INC back).
sub take_what_the_compile_left {
    my ($c) = @_;
    @$c{qw(site_inc site_packages)} = FCGI::Spawn::Loader::take_compiled_site_files();
    $c->{ends} = [ FCGI::Spawn::Native::take_end_blocks(
        FCGI::Spawn::Native::end_block_count() - $c->{ends_before}, $c->{script}) ];
    $c->{formats} = { FCGI::Spawn::Native::take_formats() };
    $c->{inc} = [@INC];
    @INC = @{ $c->{inc_before} };
    return;
}

# The compiled sub; or, when the compile failed, what it made goes and
# the compile error dies as perl reports it for a program.
sub find_handler {
    my ($c) = @_;
    $c->{handler} = $c->{error} eq '' && FCGI::Spawn::Compile::compiled_handler($c->{package});
    return if $c->{handler};
    FCGI::Spawn::Symbols::delete_package($_) for @{ $c->{packages} };
    FCGI::Spawn::Symbols::delete_script_names();
    FCGI::Spawn::Compile::die_compile_error($c->{error}, $c->{script}) if $c->{error} ne '';
    die "fcgi-spawn: $c->{script} did not compile into a handler\n";
}

# Named subs that capture file-scoped lexicals would keep the first run's
# variables for ever ("Variable will not stay shared") if the compiled
# script ran again in this process: a mode whose compiled sub runs again
# here (registry; %FCGI::Spawn::Runner::MODES' captured_lexicals) runs it
# in a child forked for each request instead (as fork isolation does),
# which keeps it compiled once and exact; the first run in a child sees
# the variables as compiled, as every run of a new process does.
sub run_in_child_if_captured {
    my ($c) = @_;
    my $script = $c->{script};
    my @captured = FCGI::Spawn::Native::captured_lexicals($c->{package}, $c->{handler}, @{ $c->{ends} });
    $c->{captured} = @captured ? join('; ', @captured) : undef;
    if (@captured && $req{steps}{captured_lexicals}) {
        my $fork_only = $c->{fork_only} = join('; ', @captured) . ' keep file-scoped lexicals';
        warn "fcgi-spawn: $script runs in a child per request (fork isolation), not in the worker: its "
            . "$fork_only\n" unless ($FORK_ONLY{$script} // '') eq $fork_only;
        $FORK_ONLY{$script} = $fork_only;
    }
    else {
        delete $FORK_ONLY{$script};
    }
    return;
}

# What the compile added to shared tables is the script's: its top-level
# names ($main::x, a package Foo it names), and the packages it declares
# inside existing ones. Their state is kept as compiled and they are out
# of sight of other scripts between its runs. perl's special variables
# ($~, $^W...) are the worker's, and so is the top-level package of a
# module it loaded (named before it loaded: `use constant Z => eval {
# require Compress::Zlib }`). Its subs in the worker's packages (`sub
# CGI::x {...}`) likewise: recorded, and the worker's put back.
sub take_script_names {
    my ($c) = @_;
    FCGI::Spawn::Symbols::claim_module_names('all');
    $c->{made} = [ grep { /\A[A-Za-z_]\w*(?:::)?\z/ && !$SPECIAL_NAMES{$_} }
        FCGI::Spawn::Symbols::script_names() ];
    $c->{made_packages} = [ map { substr $_, 0, -2 } grep { /::\z/ } @{ $c->{made} } ];
    $c->{code} = [ FCGI::Spawn::Native::code_changes($c->{script}) ];
    FCGI::Spawn::Native::restore_code($c->{script});
    # A package it declares at the top level is also one of the names it
    # made: listed once, so it is snapshotted and put back once.
    my %listed = map { $_ => 1 } @{ $c->{packages} };
    push @{ $c->{packages} }, grep { !$listed{$_}++ } @{ $c->{made_packages} };
    # A site library's package inside a top-level name the worker owns
    # (BackupPC::Lib beside the system's BackupPC::XS) is the script's all
    # the same: put back with it, and out of sight between its runs, as a
    # package the script declares inside an existing one.
    push @{ $c->{packages} }, outermost(grep { !inside($_, $c->{packages}) } @{ $c->{site_packages} });
    return;
}

# Whether $package is one of @$packages or inside one of them.
sub inside {
    my ($package, $packages) = @_;
    return scalar grep { $package eq $_ || index($package, "${_}::") == 0 } @$packages;
}

# The packages not inside another of the list.
sub outermost {
    my (@packages) = @_;
    return grep { my $p = $_; !grep { index($p, "${_}::") == 0 } @packages } @packages;
}

# The registry's entry for the compiled script: what each run puts back
# (its state as compiled, snapshots of its packages) and what tells when
# to compile it again.
sub new_entry {
    my ($c, $stamp) = @_;
    my ($script, $package, $packages) = @$c{qw(script package packages)};
    my $data = do { no strict 'refs'; \*{"${package}::DATA"} };
    my @subs = ($c->{handler}, map { script_subs($_) } @$packages);
    return {
        once_patterns => FCGI::Spawn::Native::once_patterns($script, @subs),
        # `state` variables: emptied after each run, set up by the next.
        state_vars    => FCGI::Spawn::Native::state_vars($script, @subs),
        # File lexicals a BEGIN block set: back before each run.
        lexicals     => FCGI::Spawn::Native::compiled_lexicals($c->{handler}),
        fork_only    => $c->{fork_only},
        captured     => $c->{captured},
        stamp        => $stamp,
        handler      => $c->{handler},
        ends         => $c->{ends},
        formats      => $c->{formats},
        warnings     => $c->{source}{warnings},
        inc          => ("@{ $c->{inc} }" eq "@{ $c->{inc_before} }" ? undef : $c->{inc}),
        site_inc     => (%{ $c->{site_inc} } ? $c->{site_inc} : undef),
        sig          => (%{ $c->{sig} } ? $c->{sig} : undef),
        module_state => FCGI::Spawn::Modules::changed_scalars($c->{module_state_before}),
        package_names => $packages,
        site_packages => $c->{site_packages},
        packages     => [ map { FCGI::Spawn::Native::snapshot_package($_, 1) } @$packages ],
        main_globals => [ map { \$main::{$_} } grep { !/::\z/ } @{ $c->{made} } ],
        code         => $c->{code},
        data         => $data,
        data_pos     => (defined fileno($data) ? tell($data) : -1),
    };
}

# The script's top-level names and the packages it declared inside
# existing ones, taken out of their tables (shown again for its runs).
sub hide_script_symbols {
    my ($entry, $c) = @_;
    my @packages = @{ $c->{packages} };
    my %nested;
    for my $declared (@packages[1 .. $#packages]) {
        my ($parent, $leaf) = $declared =~ /\A(.+)::([^:]+)\z/ or next;
        push @{ $nested{$parent} }, "${leaf}::" if !grep { $_ eq $declared } @{ $c->{made_packages} };
    }
    $entry->{hidden} = [
        map { [ $_, FCGI::Spawn::Native::detach_symbols($_, @{ $nested{$_} }) ] } sort keys %nested
    ];
    unshift @{ $entry->{hidden} }, [ 'main', FCGI::Spawn::Native::detach_symbols('main', @{ $c->{made} }) ];
    name_hidden($entry);
    return;
}

# --- the hidden names --------------------------------------------------------

# A top-level package the script's compile only named (`require Foo::Bar`
# at run time makes Foo::) is the worker's once that module has loaded into
# it: it stays in place for everyone, no longer reset or hidden. The
# script's site libraries inside it stay the script's, put back as
# compiled (their snapshots taken from inside the released one's).
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
    my %snapshot_of;
    @snapshot_of{ @{ $entry->{package_names} } } = @{ $entry->{packages} };
    my (@names, @snapshots);
    for my $name (@{ $entry->{package_names} }) {
        next if $released{$name};
        push @names, $name;
        push @snapshots, $snapshot_of{$name};
    }
    my %released_snapshot = map { $_ => $snapshot_of{$_} } keys %released;
    my $released = [ keys %released ];
    my @kept;
    for my $package (outermost(grep { inside($_, $released) } @{ $entry->{site_packages} })) {
        my ($inner) = snapshots_of($package, \%released_snapshot) or next;
        my ($parent, $leaf) = $package =~ /\A(.+)::([^:]+)\z/ or next;
        my $parent_stash = FCGI::Spawn::Symbols::stash_of($parent) or next;
        push @names, $package;
        push @kept, $inner;
        # Out of sight between runs: hide_again takes it out after this
        # run's restore (which needs it in its table).
        push @{ $entry->{hidden} }, [ $parent, "${leaf}::", \$parent_stash->{"${leaf}::"} ];
    }
    name_hidden($entry) if @kept;
    FCGI::Spawn::Native::retire_snapshot($_, @kept) for grep { defined } values %released_snapshot;
    push @snapshots, @kept;
    $entry->{package_names} = \@names;
    $entry->{packages} = \@snapshots;
    delete $entry->{script_packages};
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
    # What show_hidden and hide_again go through: the tables with a name
    # hidden in them (a script that made none costs nothing there, and
    # perl's cache of class names stays).
    $entry->{to_show} = [ grep { @$_ > 1 } @{ $entry->{hidden} } ];
    $entry->{to_hide} = [ grep { @$_ > 1 } @{ $entry->{hidden_names} } ];
    # Whether hidden_name_taken has a name of main:: to look for.
    $entry->{hides_main} = @{ $entry->{hidden_names}[0] } > 1;
    return;
}

# A registry script's own symbols back in their tables for its run, and out
# again after it.
sub show_hidden {
    my ($entry) = @_;
    FCGI::Spawn::Native::attach_symbols(@$_) for @{ $entry->{to_show} };
    FCGI::Spawn::Native::install_code(@{ $entry->{code} }) if @{ $entry->{code} };
    return;
}

sub hide_again {
    my ($entry) = @_;
    FCGI::Spawn::Native::detach_symbols(@$_) for @{ $entry->{to_hide} };
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

# --- run ---------------------------------------------------------------------

# registry, fork: the cached sub, its state as compiled put back first.
sub run_cached {
    my $entry = cached_handler($req{script}, $req{package});
    if ($entry->{fork_only} and my $run_once = $req{steps}{captured_lexicals}) {
        # Found out by this compile (the script changed, and now keeps
        # file lexicals in named subs): this once, a compile of its own;
        # the next request goes to a child (run_request).
        return $run_once->();
    }
    $FCGI::Spawn::Request::STEP_COSTS
        ? FCGI::Spawn::Request::run_parts('run_script', undef,
            [ [ 'the compiled script back' => sub { compiled_state_back($entry) } ] ])
        : compiled_state_back($entry);
    local $^W = 1 if $entry->{warnings};
    local $FCGI::Spawn::Loader::KEEP_RUN_LOADS = 1 if $req{steps}{keep_run_loads};
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
    show_hidden($entry) if @{ $entry->{to_show} } || @{ $entry->{code} };
    seek $entry->{data}, $entry->{data_pos}, 0 if $entry->{data_pos} >= 0;
    FCGI::Spawn::Native::lexicals_back($entry->{handler}, $entry->{lexicals}) if $entry->{lexicals};
    FCGI::Spawn::Native::install_formats(%{ $entry->{formats} }) if %{ $entry->{formats} };
    FCGI::Spawn::Modules::set_scalars($entry->{module_state}) if %{ $entry->{module_state} };
    @INC = @{ $entry->{inc} } if $entry->{inc};
    @INC{ keys %{ $entry->{site_inc} } } = values %{ $entry->{site_inc} } if $entry->{site_inc};
    @SIG{ keys %{ $entry->{sig} } } = values %{ $entry->{sig} } if $entry->{sig};
    return;
}

# --- END blocks --------------------------------------------------------------

# registry, fork: the END blocks the script's compile made.
sub cached_end_blocks {
    my $entry = $REGISTRY{ $req{script} };
    return $entry ? @{ $entry->{ends} || [] } : ();
}

# --- finish ------------------------------------------------------------------

# registry: the script's packages back to their post-compile state (which
# closes the handles the run opened on them), its main:: globals emptied,
# and all of it out of sight again.
sub reset_cached_state {
    # What the site files the run loaded hold goes before the response
    # ends, as at a CGI process's exit (their packages go after it).
    FCGI::Spawn::Loader::release_loaded() if @FCGI::Spawn::Loader::LOADED;
    my $entry = $REGISTRY{ $req{script} } or return;
    # First, as the run's other lexicals went when it returned: what its
    # state variables held goes (DESTROY sees the packages as the run left
    # them, as global destruction would).
    FCGI::Spawn::Native::forget_state_vars($entry->{state_vars}) if $entry->{state_vars};
    keep_run_loads($entry) if @FCGI::Spawn::Loader::KEPT_RUN_LOADS;
    delete @INC{ keys %{ $entry->{site_inc} } } if $entry->{site_inc};
    # Nothing loaded and nothing became the worker's since the last look
    # (the usual case): no package of the script's to release.
    release_module_packages($entry)
        if keys %INC != $FCGI::Spawn::Symbols::INC_COUNT_CLAIMED
        || ($entry->{owned_seen} // -1) != $FCGI::Spawn::Symbols::OWNED_GENERATION;
    my @lost = map { FCGI::Spawn::Native::restore_package($_) } grep { defined } @{ $entry->{packages} };
    FCGI::Spawn::Native::forget_once_patterns($entry->{once_patterns}) if $entry->{once_patterns};
    for my $glob (@{ $entry->{main_globals} }) {
        next unless ref $glob eq 'GLOB';
        ${ *{$glob}{SCALAR} } = undef;
        @{ *{$glob}{ARRAY} } = () if *{$glob}{ARRAY};
        %{ *{$glob}{HASH} } = () if *{$glob}{HASH};
    }
    hide_again($entry) if @{ $entry->{to_hide} };
    # What the run did that no restore undoes (`undef &sub`, `*name =
    # *other`): the script is compiled again before its next run, as if
    # its file had changed.
    if (@lost) {
        warn 'fcgi-spawn: its run emptied or aliased what it compiled (' . join(', ', @lost)
            . "): compiled again for its next run\n";
        $entry->{stamp} = '';
    }
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
    return FCGI::Spawn::Native::file_stamp($_[0]) // '';
}

# Whether a file the script keeps changed on disk since it was loaded.
sub kept_file_changed {
    my ($entry) = @_;
    my $kept = $entry->{kept_files} or return 0;
    return scalar grep { file_stamp($_) ne $kept->{$_} } keys %$kept;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Registry - CGI scripts compiled once per fcgi-spawn worker, and put back after each run

=head1 DESCRIPTION

Used by L<FCGI::Spawn::Runner> inside the daemon; not meant for scripts.
In C<registry> and C<fork> modes the file becomes one sub, compiled once
per worker (C<cached_handler>, C<compile_cached>); before each run the
package is as it was right after the compile (see
C<FCGI::Spawn::Native::restore_package>), and CGI.pm keeps the pragmas
the script's C<use CGI> line set.

=cut
