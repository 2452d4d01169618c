package FCGI::Spawn::Boot;

# The first Perl a new interpreter runs: how the daemon's own modules,
# compiled into the binary so that it needs no files besides itself, and
# the --preload modules get loaded. Rust evaluates this file's text as it
# is (the one eval of source it does), then only calls the subs below, by
# the names src/runner/steps.rs lists.

# Compiles an embedded module's source as the file it names (errors and
# caller() say FCGI/Spawn/Runner.pm line N), in package main and outside
# this file's `use strict` and lexicals, as a top-level eval would: the
# module's own pragmas are the only ones in force. $@ says why it failed.
sub compile_embedded {
    package main;
    eval "#line 1 \"$_[0]\"\n$_[1]";
    return;
}

use strict;
use warnings;

our $VERSION = '0.1.0';

$INC{'FCGI/Spawn/Boot.pm'} = '(embedded in fcgi-spawn)/FCGI/Spawn/Boot.pm';

# load_embedded(PATH, SOURCE): one of the daemon's modules, PATH being its
# %INC key (FCGI/Spawn/Runner.pm); `require` then finds it loaded.
sub load_embedded {
    my ($path, $source) = @_;
    local $@;
    compile_embedded($path, $source);
    die $@ if $@;
    $INC{$path} = "(embedded in fcgi-spawn)/$path";
    return 1;
}

# preload_module(NAME): a --preload module, loaded in the master before the
# fork. NAME was checked by the configuration (a module name, no code).
sub preload_module {
    my ($module) = @_;
    (my $file = "$module.pm") =~ s{::}{/}g;
    require $file;
    return 1;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Boot - load the daemon's embedded modules and the preloads

=head1 DESCRIPTION

Built into the fcgi-spawn daemon, the first code a new interpreter runs (at
the start, at each reload, and for C<fcgi-spawn check>): C<load_embedded>
compiles each of the daemon's other modules from the source compiled into
the binary and records it in C<%INC>; C<preload_module> loads a
C<--preload> module.

=cut
