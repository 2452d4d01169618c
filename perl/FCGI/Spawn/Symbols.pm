package FCGI::Spawn::Symbols;

# Symbol tables as the runner sees them: finding a package without
# creating it, deleting one whatever odd entries perl left in it, and
# telling the top-level names a script made from those the worker (its
# preloads, and modules loaded on the way) owns.

use strict;
use warnings;

our $VERSION = '0.1.0';

# Top-level names of main:: that belong to the worker: there before any
# request, or made while a module loaded. Everything else a request leaves
# in main:: is the script's and goes after it.
my %OWNED;
my $OWNED_COUNT = 0;

# The stash of a package, or undef; never creates one (a plain %{"X::"}
# would). Entries that are not globs (sub stubs, constants) end the walk.
sub stash_of {
    my ($name) = @_;
    my $stash = \%main::;
    for my $part (split /::/, $name) {
        next if $part eq 'main' && $stash == \%main::;
        # exists first: a reference to a missing element would make it.
        return undef unless exists $stash->{"${part}::"};
        my $entry = \$stash->{"${part}::"};
        return undef unless ref $entry eq 'GLOB';
        $stash = *{$entry}{HASH} or return undef;
    }
    return $stash;
}

# Deletes a package and everything in it (what Symbol::delete_package
# does, without its assumptions: stashes can hold stubs and constants that
# are not globs, and names such as "<none>" that perl makes itself).
sub delete_package {
    my ($name) = @_;
    my ($parent_name, $leaf) = $name =~ /\A(?:(.*)::)?([^:]+)\z/s or return;
    my $parent = defined $parent_name ? stash_of($parent_name) : \%main::;
    return unless $parent;
    delete_package_in($parent, $leaf, $name);
    return;
}

# The same, for a package whose parent's stash the caller holds (perlrun's
# sandbox, every request: no walk from main:: to find it).
sub delete_package_in {
    my ($parent, $leaf, $name) = @_;
    return unless exists $parent->{"${leaf}::"};
    my $entry = \$parent->{"${leaf}::"};
    if (ref $entry eq 'GLOB' && (my $stash = *{$entry}{HASH})) {
        # Emptying each glob frees what it holds even when something else
        # still refers to the glob (compiled code, a reference).
        for my $symbol (keys %$stash) {
            my $glob = \$stash->{$symbol};
            undef *{$glob} if ref $glob eq 'GLOB';
        }
        %$stash = ();
    }
    delete $parent->{"${leaf}::"};
    if ($parent == \%main:: && delete $OWNED{"${leaf}::"}) {
        recount_owned();
    }
    FCGI::Spawn::Modules::forget($name) if defined &FCGI::Spawn::Modules::forget;
    return;
}

# The worker's own top-level names, as they are now.
sub own_current_names {
    # The same count as owned: the same names (what is owned is there).
    # Rebuilding the table then would only free the master's copy of it in
    # a worker, writing to pages the two share.
    return if keys %main:: == $OWNED_COUNT && $OWNED_COUNT;
    %OWNED = map { $_ => 1 } keys %main::;
    recount_owned();
    return;
}

# Runs $code (a module being loaded) and takes the top-level names it
# made as the worker's: DBI makes DBD:: when it loads, and a request that
# never connects must not delete it.
sub owning_new_names {
    my ($code) = @_;
    my %before = map { $_ => 1 } keys %main::;
    my $guard = FCGI::Spawn::Symbols::Guard->new(sub {
        for my $name (keys %main::) {
            $OWNED{$name} = 1 if !$before{$name};
        }
        recount_owned();
    });
    return $code->();
}

# The same, when no script's names can be mixed in (between requests).
sub owning_names_made_by {
    my ($code) = @_;
    my $guard = FCGI::Spawn::Symbols::Guard->new(\&own_current_names);
    return $code->();
}

sub main_is_clean { return keys %main:: == $OWNED_COUNT }

# The count is what the glue compares main:: with after every request;
# the generation tells a registry script whether names it keeps hidden may
# have become the worker's since it last looked.
our $OWNED_GENERATION = 0;

sub recount_owned {
    $OWNED_COUNT = keys %OWNED;
    $OWNED_GENERATION++;
    FCGI::Spawn::Native::owned_names($OWNED_COUNT);
    return;
}

# What the script's top-level names hold goes (an object's DESTROY runs):
# its main:: globals, and the packages it made at the top level (one its
# text names before a file it loads declares it); delete_script_names
# deletes them after.
sub release_script_names {
    return if keys %main:: == $OWNED_COUNT;
    claim_module_names();
    my @names = grep { !$OWNED{$_} } FCGI::Spawn::Native::plain_keys(\%main::);
    FCGI::Spawn::Native::release_package_data(substr($_, 0, -2), 1) for grep { /::\z/ } @names;
    FCGI::Spawn::Native::release_glob_data(map { \$main::{$_} } grep { !/::\z/ } @names);
    return;
}

# Deletes the top-level names the script made: its packages (a `package
# Foo;` at the top level), its main:: globals.
sub delete_script_names {
    return if keys %main:: == $OWNED_COUNT;
    claim_module_names();
    for my $name (FCGI::Spawn::Native::plain_keys(\%main::)) {
        next if $OWNED{$name};
        if ($name =~ /::\z/) {
            delete_package(substr $name, 0, -2);
        }
        else {
            delete $main::{$name};
        }
    }
    return;
}

# Perl loads some modules itself, past any require override (IO::File for
# STDOUT->flush, Errno for %!), and a script's compile can make a module's
# top-level package before the module loads (`require Foo::Bar` at run
# time): the top-level package of every module in %INC is the worker's.
# Between compiles the size of %INC tells whether anything loaded; a
# compile asks for every file ($all): a registry compile takes its site
# libraries out of %INC, so the size can come back to what it was with a
# module of the worker's among the files.
our $INC_COUNT_CLAIMED = -1;
# %INC keys of files the request loaded that go with it (the loader's):
# not modules of the worker.
our %REQUEST_FILES;

sub claim_module_names {
    my ($all) = @_;
    return if !$all && keys %INC == $INC_COUNT_CLAIMED;
    for my $file (FCGI::Spawn::Native::plain_keys(\%INC)) {
        next if $REQUEST_FILES{$file};
        next unless $file =~ m{\A([A-Za-z_]\w*)(?:/|\.pm\z)};
        # Set only when not yet: a store writes to the value (shared with
        # the master in a worker) even when it stays 1.
        $OWNED{"$1::"} = 1 if !$OWNED{"$1::"} && exists $main::{"$1::"};
    }
    recount_owned();
    $INC_COUNT_CLAIMED = keys %INC;
    return;
}

sub is_owned { return $OWNED{ $_[0] } ? 1 : 0 }

# The top-level names made since own_current_names, without deleting them.
sub script_names {
    return grep { !$OWNED{$_} } FCGI::Spawn::Native::plain_keys(\%main::);
}

# Reads what is left of an open file into $$text: read, not readline (a
# readline would make the handle perl's "last read" one, and a script's
# die messages would end in "<$fh> line 1"), with the file's size as the
# first read's length (reading 64 KiB pieces grew and copied the buffer
# for a file of a few hundred bytes).
sub read_whole {
    my ($fh, $text) = @_;
    $$text = '';
    my $size = (-s $fh) || 0;
    read $fh, $$text, $size if $size;
    # Whatever is left (a file that grew meanwhile, one -s cannot size).
    1 while read $fh, $$text, ($size ? 4096 : 65536), length $$text;
    return;
}

# The packages a script's source declares (`package Foo::Bar;`,
# `package Foo::Bar { ... }`), main excluded.
sub declared_packages {
    my ($source_ref) = @_;
    my %seen;
    while ($$source_ref =~ /^\s*package\s+([A-Za-z_]\w*(?:::\w+)*)\s*(?:[\d._v]+\s*)?[;{]/mg) {
        $seen{$1} = 1 unless $1 eq 'main';
    }
    return keys %seen;
}

package FCGI::Spawn::Symbols::Guard;

# Runs a sub when it goes out of scope, also when a die unwinds through.
sub new { my ($class, $code) = @_; return bless { code => $code }, $class }
sub DESTROY { $_[0]{code}->() }

1;

__END__

=head1 NAME

FCGI::Spawn::Symbols - symbol-table helpers of the fcgi-spawn request runner

=head1 DESCRIPTION

Used by L<FCGI::Spawn::Runner> and the modules it runs the steps with
inside the daemon; not meant for scripts.
C<delete_package> removes a script's package; C<own_current_names>,
C<owning_new_names> and C<delete_script_names> keep apart the top-level
names a request made (deleted after it) from those the worker's modules
made (kept, whatever C<%INC> says).

=cut
