package FCGI::Spawn::Compile;

# A script's file compiled as perl compiles a program, in a package of its
# own: its text read and its shebang switches honoured (read_source), then
# handed to `do` through an @INC hook behind a one-line prologue
# (do_source), so __FILE__, line numbers, __DATA__/__END__, BEGIN and END
# blocks and file-scoped lexicals behave as when perl runs the file.
# perlrun compiles it at file scope, registry and fork as the body of one
# sub (FCGI::Spawn::Registry); a compile error dies as perl reports it for
# a program (die_compile_error). The package names are made here too.

use strict;
use warnings;

our $VERSION = '0.1.0';

# Name the script is loaded under through our @INC hook. Not absolute, so
# `do` consults @INC; never a real file.
my $VIRTUAL_FILE = 'FCGI-Spawn-script.pl';

# Name of the sub a script becomes in registry and fork modes.
my $HANDLER = '__fcgi_spawn_handler';

my %TAINT_WARNED;

our $SCRIPT_STARTED;   # set by a perlrun script's prologue (Native::start_script)

# --- package names -----------------------------------------------------------

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

# Deletes a package fresh_namespace named, and all in it.
sub drop_fresh_namespace {
    my ($name) = @_;
    my $leaf = substr $name, length 'FCGI::Spawn::Sandbox::Run::';
    FCGI::Spawn::Symbols::delete_package_in(\%FCGI::Spawn::Sandbox::Run::, $leaf, $name);
    return;
}

# The warm-up's script is not a site's: its package name is not kept.
sub forget_namespace {
    my ($script) = @_;
    delete $NAMESPACE_OF{$script};
    return;
}

# --- compile -----------------------------------------------------------------

# The script's text and what its shebang line asks for.
sub read_source {
    my ($script) = @_;
    no warnings 'io';    # see FCGI::Spawn::Runner::bind_std_handles
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

# perlrun compiles its script on every request. What the file's text gives
# (the text to compile, its switches, the packages it declares) is kept
# per script while the file is unchanged, so that a quiet request costs one
# stat instead of an open and a read. The stamp (device, inode, size,
# mtime, ctime) is trusted only for a file whose last change is two seconds
# old when it is read: stat's times are whole seconds, and a second change
# within the same second would not show. Stat first, read after: a change
# in between leaves a stamp that no longer matches.
my %FILE_SCOPE_SOURCE;
my $FILE_SCOPE_SOURCES_KEPT = 1000;

sub file_scope_source {
    my ($script) = @_;
    my @st = stat $script;
    my $stamp = join ':', @st[ 0, 1, 7, 9, 10 ];
    my $kept = $FILE_SCOPE_SOURCE{$script};
    return $kept if $kept && $kept->{stamp} eq $stamp;
    my $source = read_source($script);
    # Nothing holds the file open between requests: DATA opens it by path.
    close delete $source->{fh};
    $source->{stamp} = $stamp;
    %FILE_SCOPE_SOURCE = () if keys %FILE_SCOPE_SOURCE >= $FILE_SCOPE_SOURCES_KEPT;
    if (@st && $st[10] <= time - 2) {
        $FILE_SCOPE_SOURCE{$script} = $source;
    }
    else {
        delete $FILE_SCOPE_SOURCE{$script};
    }
    return $source;
}

# What our @INC hook hands to `do`: a prologue, then the file itself, so
# __FILE__, line numbers, BEGIN/END and use/require behave as when perl
# runs the file directly.
#   perlrun:  the file at file scope in the sandbox package; its first
#             statement (Native::start_script) clears the "inside eval"
#             flag `do` sets, so $^S is 0 and an uncaught die ends the
#             script like a perl program.
#   registry, fork: the file becomes the body of one sub.
# The text stops at a __DATA__ or __END__ line; the DATA handle is opened
# on the file at what follows it (open_data), as perl opens it for a main
# program. A handle on the text rather than the text itself: given text
# alone, perl opens /dev/null to read the rest from. (Letting perl read the
# file through a source filter instead leaked each request's filter state
# in perlrun.)
sub source_for_do {
    my ($source, $package, $as_sub) = @_;
    my $parts = $source->{ $as_sub ? 'sub_parts' : 'file_parts' } //= text_parts($source, $as_sub);
    my $text = join $package, @$parts;
    no warnings 'io';    # see FCGI::Spawn::Runner::bind_std_handles
    open my $in, '<', \$text or die "fcgi-spawn: cannot read the text of $source->{path}: $!\n";
    return $in;
}

# The text to compile, cut where the package's name goes (join them with
# it): the same for every perlrun request.
sub text_parts {
    my ($source, $as_sub) = @_;
    my $script = $source->{path};
    my $text = ${ $source->{text} };
    my $name_here = "\0FCGI-Spawn-package\0";
    $name_here .= "\0" while index($text, $name_here) >= 0;
    my $switches = $source->{warnings} ? 'BEGIN { $^W = 1 } ' : '';
    my $prologue = $as_sub
        ? "package $name_here; sub $HANDLER { $switches\n#line 1 \"$script\"\n"
        : "package $name_here; FCGI::Spawn::Native::start_script(); $switches\n#line 1 \"$script\"\n";
    my $epilogue = '';
    if ($text =~ /^__(END|DATA)__\b[^\n]*\n?/mg) {
        my ($marker, $data_at) = ($1, pos $text);
        substr($text, $-[0]) = '';
        # __DATA__ opens the DATA handle of the package current there,
        # __END__ main's: the script's own package here. $^H tells whether
        # `use utf8` is in force there, which gives DATA a :utf8 layer.
        my $owner = $marker eq 'DATA' ? '__PACKAGE__' : "'$name_here'";
        $epilogue = "\n;BEGIN { FCGI::Spawn::Compile::open_data($owner, $data_at, \$^H) }";
    }
    # A script that switches back with `package main;` means its own file
    # scope, which is the sandbox package here.
    $text =~ s/^(\s*package\s+)main(?=\s*[;{])/$1$name_here/mg;
    return [ split /\Q$name_here\E/, $prologue . $text . $epilogue . ($as_sub ? "\n}\n" : "\n"), -1 ];
}

# The DATA handle of the script being compiled, at the byte after its
# __DATA__/__END__ line. Called from the compiled text's last BEGIN block.
our $COMPILING;    # the source being compiled

sub open_data {
    my ($package, $offset, $hints) = @_;
    my $data = do { no strict 'refs'; \*{"${package}::DATA"} };
    no warnings 'io';    # see FCGI::Spawn::Runner::bind_std_handles
    # A perlrun script's kept text has no handle (file_scope_source).
    my $opened = $COMPILING->{fh} ? open($data, '<&', $COMPILING->{fh}) : open($data, '<', $COMPILING->{path});
    $opened or die "fcgi-spawn: cannot open DATA of $COMPILING->{path}: $!\n";
    seek $data, $offset, 0;
    binmode $data, ':utf8' if $hints & 0x00800000;    # HINT_UTF8
    return;
}

# The @INC hook that hands the source being compiled to `do`, while it is
# there: not a closure, which would be made and freed every perlrun request.
our $COMPILING_INTO;    # [package, as a sub?] of that compile
our $SOURCE_HOOK = sub {
    return unless $_[1] eq $VIRTUAL_FILE;
    take_hook_out();
    my $text = source_for_do($COMPILING, @$COMPILING_INTO);
    # A script starts, as a new perl does, with $! and $? clear: perl's
    # die exits with $! when it is set, else with $? >> 8 (a child's
    # status left by an earlier request's waitpid).
    $! = 0;
    $? = 0;
    return $text;
};
# The @INC entry that held it, out of @INC (take_hook_out) until `do` is over.
our $HOOK_ENTRY;

# Compiles (and, at file scope, runs) the source with `do` through our
# @INC hook. $@ says how it went, as after `do FILE`.
sub do_source {
    my ($source, $package, $as_sub) = @_;
    # Compiled as a sub (registry, fork), the file is closed once compiled,
    # as perl closes a program's (DATA has a handle of its own, open_data),
    # also when the compile ends in a die or an exit: the compiled sub can
    # keep this record alive (code in a pattern, s///e, does), and its
    # handle with it. Not before the compile: that left the file of a
    # module the script uses open (CGI/Fast.pm, t/53), for a reason in
    # perl's parser not pinned down. At file scope (perlrun) the record
    # has no handle (file_scope_source).
    my $closer = $as_sub && bless [ $source->{fh} ], 'FCGI::Spawn::Compile::FileCloser';
    local $COMPILING = $source;
    local $COMPILING_INTO = [ $package, $as_sub ];
    local $HOOK_ENTRY;
    unshift @INC, $SOURCE_HOOK;
    $@ = '';
    # The worker's subs are checked after a compile (FCGI::Spawn::Native::
    # restore_code), but for a perlrun script whose text names no package
    # and no sub outside its own: the check would walk every package the
    # worker has, every request.
    FCGI::Spawn::Native::script_compile_next() unless $as_sub || defines_elsewhere($source);
    CORE::do($VIRTUAL_FILE);    # not the loader's do: no @INC search for it
    unhook_source() unless $HOOK_ENTRY;
    delete $INC{$VIRTUAL_FILE};
    return;
}

# Whether the script's text may define a sub outside its own package: a
# `package` line, or a sub named with a package (`sub CGI::header`,
# `sub main::x`, `sub CGI'x`). Anywhere in the text, heredocs and POD
# included: a false alarm costs a check, a miss a leak.
sub defines_elsewhere {
    my ($source) = @_;
    return $source->{defines_elsewhere} //=
        ${ $source->{text} } =~ /^\s*package\b|\bsub\s+(?:\w*(?:::|'))+\w/m ? 1 : 0;
}

sub FCGI::Spawn::Compile::FileCloser::DESTROY { close $_[0][0] if $_[0][0] }

# The script must see @INC as it is (and its `use lib` must stay in it), so
# the hook takes itself out before handing over the text. Perl is walking
# @INC then, and stores the entry it called in %INC after the hook returns:
# the entry is kept alive ($HOOK_ENTRY) until `do` is over.
sub take_hook_out {
    for my $i (0 .. $#INC) {
        next unless ref $INC[$i] && $INC[$i] == $SOURCE_HOOK;
        $HOOK_ENTRY = \$INC[$i];
        splice @INC, $i, 1;
        return;
    }
    return;
}

# The hook out of @INC when perl never called it.
sub unhook_source {
    @INC = grep { !ref || !$SOURCE_HOOK || $_ != $SOURCE_HOOK } @INC;
    return;
}

# The packages a script declares that do not exist yet: they are the
# script's, and go (perlrun) or are reset (registry) after it.
sub new_declared_packages {
    my ($source) = @_;
    my $declared = $source->{declared} //= [ FCGI::Spawn::Symbols::declared_packages($source->{text}) ];
    return grep { !FCGI::Spawn::Symbols::stash_of($_) } @$declared;
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

# The sub a compile as a sub made, if it made one.
sub compiled_handler {
    my ($package) = @_;
    return $package->can($HANDLER);
}

1;

__END__

=head1 NAME

FCGI::Spawn::Compile - a CGI script's file compiled as perl compiles a program, inside an fcgi-spawn worker

=head1 DESCRIPTION

Used by L<FCGI::Spawn::Runner> and L<FCGI::Spawn::Registry> inside the
daemon; not meant for scripts. C<do_source> compiles a script read by
C<read_source> into a package: at file scope (C<perlrun>), or as one sub
(C<registry>, C<fork>; C<compiled_handler> finds it). Through an C<@INC>
hook, C<do> reads the real file after a one-line prologue, so
C<__FILE__>, line numbers, C<__DATA__>/C<__END__>, C<BEGIN> and C<END>
blocks and file-scoped lexicals behave as in a fresh perl. At file scope
the prologue clears the interpreter's "inside eval" flag, so C<$^S> is 0
and an uncaught C<die> ends the script the way it ends a perl program
(message on STDERR, exit status 255).

=cut
