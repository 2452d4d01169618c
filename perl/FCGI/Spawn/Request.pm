package FCGI::Spawn::Request;

# The request being served, as the runner's steps share it, and how a step
# runs its parts. What mod_perl's RegistryCooker keeps in its object, the
# steps here keep in one hash, %req: begin_request (or compile_script) in
# FCGI::Spawn::Runner sets it up (script, package, mode and the mode's
# steps), the steps add to it, end_request empties it. The runner's
# modules (Runner, Registry, Restore) see it as their own %req, an alias
# made when each loads: one value, and no call between a step and it.

use strict;
use warnings;

our $VERSION = '0.1.0';

# The request being served; emptied by end_request.
our %req;

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

1;

__END__

=head1 NAME

FCGI::Spawn::Request - the request an fcgi-spawn worker is serving, as the runner's steps share it

=head1 DESCRIPTION

Used by L<FCGI::Spawn::Runner>, L<FCGI::Spawn::Registry> and
L<FCGI::Spawn::Restore> inside the daemon; not meant for scripts.
C<%req> is the request being served; C<run_parts> runs the parts of a step,
trapped or not, and with C<FCGI_SPAWN_STEP_COSTS> adds up their CPU time.

=cut
