package FCGI::Spawn::Restore;

# The worker put back after a request. What every request starts from is
# captured after the preload, and again in each worker (capture_base_state).
# After the script, the parts of FCGI::Spawn::Runner's finish_request (what
# process exit does before the response is complete) and end_request
# (after the response) put the rest back: most of it the C glue does itself
# (FCGI::Spawn::Native::leave_request, a handful of compares for a quiet
# request), naming what it could not; those parts are here.
# broken_invariants names what a worker that cannot vouch for its state got
# wrong: it is replaced.

use strict;
use warnings;

our $VERSION = '0.1.0';

# The request being served (FCGI::Spawn::Request).
our %req;
*req = \%FCGI::Spawn::Request::req;

# --- what every request starts from ------------------------------------------

# The worker's state between requests: what every request starts from and
# is put back to. Captured once, after the preload.
our %BASE = (
    env          => {},
    sig          => {},
    program_name => 'fcgi-spawn',
    core_global  => undef,
);

# What every request starts from, taken in the master after the preload
# (and for a warm-up or a precompile), and again by each worker
# ($inherited): the environment scripts see ($keep_env: the daemon's
# variables passed on; $set_env: NAME, VALUE pairs set for every script),
# $0, %SIG, @INC, CORE::GLOBAL, the formats, the subs and the top-level
# names the worker owns.
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
    if ($inherited && $BASE{sig}) {
        # Only the handlers changed since the master took them (the worker's
        # own SIGPIPE): a %SIG fetch writes the element, and replacing the
        # master's copy would free it, pages a worker shares with it.
        for my $sig (FCGI::Spawn::Native::changed_signals(), '__WARN__', '__DIE__') {
            my $now = $SIG{$sig};
            $BASE{sig}{$sig} = $now if ($now // '') ne ($BASE{sig}{$sig} // '');
        }
    }
    else {
        $BASE{sig} = { map { $_ => $SIG{$_} } keys %SIG };
    }
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

# --- finish: what process exit does ------------------------------------------

# A tie over a std handle finishes its page in UNTIE or DESTROY (a gzip
# trailer), as process exit would have it.
sub untie_std_handles {
    for my $handle (\*STDOUT, \*STDERR, \*STDIN) { untie *$handle if tied *$handle }
    return;
}

# The worker's subs the script replaced (`sub CGI::x {...}`), back.
sub restore_worker_code {
    FCGI::Spawn::Native::restore_code(FCGI::Spawn::Loader::request_files($req{script}));
    return;
}

# As process exit closes them (kept only when exactly as bound).
sub close_std_handles {
    FCGI::Spawn::Native::close_std_handles($req{has_body});
    return;
}

# --- restore: what the glue could not put back itself ------------------------

# The END blocks the request left in perl's list: taken out.
sub take_end_blocks_left {
    my $left = FCGI::Spawn::Native::end_block_count() - ($req{ends} // 0);
    FCGI::Spawn::Native::take_end_blocks($left, $req{script}) if $left > 0 && defined $req{script};
    return;
}

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

# CORE::GLOBAL as the worker has it: a sub a script put there or replaced
# goes.
sub restore_core_global {
    FCGI::Spawn::Native::restore_package($BASE{core_global});
    return;
}

# --- check -------------------------------------------------------------------

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

1;

__END__

=head1 NAME

FCGI::Spawn::Restore - an fcgi-spawn worker put back after each request

=head1 DESCRIPTION

Used by L<FCGI::Spawn::Runner> inside the daemon; not meant for scripts.
C<capture_base_state> records what every request starts from; the other
subs are the parts of C<finish_request> and C<end_request> that put back
what the C glue could not, and C<broken_invariants> names what is still
wrong after them.

=cut
