# The differential suite over raw FastCGI (issue 8, items 5 and 6): on ONE
# warm worker per isolation mode, a seeded-random sequence of every script
# of t/scripts and examples/, the poisoners (t/scripts/poison), the checkers
# (t/scripts/check) and the applications of t/lib/FcgiSpawn/Apps; each
# response must be byte for byte what the same request gives as a plain CGI
# process. First, every checker on fresh workers must equal plain CGI (else
# it could not tell a leak from its own difference).
#
# FCGI_SPAWN_SEED=n replays a sequence, FCGI_SPAWN_LONG=1 runs a long one
# plus every poisoner followed by every checker (FCGI_SPAWN_PAIRS=1: the
# pairs alone), FCGI_SPAWN_STEPS=n sets the length, FCGI_SPAWN_MODES the
# modes (default: perlrun registry, and fork when the daemon has it).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test ();
use FcgiSpawn::Sequence;
use Test::FCGI::Spawn;

# Known, reasoned differences: { mode, script => qr//, after => qr// (a
# request served before it by the same worker), reason }. None may be
# listed for perlrun or fork: there the bytes must always match.
my @EXCEPTIONS = ();

my $bin = FcgiSpawn::Test::bin_path();
my $tmp = tempdir('fcgi-spawn-diff-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($sources, $daemon, $notes) = FcgiSpawn::Sequence::catalogue($tmp);
note $_ for @$notes;

sub fork_mode_available {
    my $out = `'$bin' config --listen '$tmp/probe.sock' --isolation fork 2>&1`;
    return $? == 0;
}

my @modes = $ENV{FCGI_SPAWN_MODES} ? split(' ', $ENV{FCGI_SPAWN_MODES}) : qw(perlrun registry fork);
if (grep { $_ eq 'fork' } @modes and !fork_mode_available()) {
    diag 'fork isolation: not tested, this daemon does not accept --isolation fork yet';
    @modes = grep { $_ ne 'fork' } @modes;
}

my $start = sub {
    my ($mode, @args) = @_;
    return Test::FCGI::Spawn->start(
        binary    => $bin,
        roots     => $daemon->{roots},
        preload   => $daemon->{preload},
        env       => $daemon->{env},
        isolation => $mode,
        workers   => 1,
        args      => [ @args, split ' ', $ENV{FCGI_SPAWN_EXTRA_ARGS} || '' ],
    );
};

my ($checkers) = grep { $_->{name} eq 'checkers' } @$sources;
my @plans;
push @plans, FcgiSpawn::Sequence->new(sources => $sources) unless $ENV{FCGI_SPAWN_PAIRS};
push @plans, FcgiSpawn::Sequence->pairs(sources => $sources) if $ENV{FCGI_SPAWN_LONG} || $ENV{FCGI_SPAWN_PAIRS};
diag 'differential sequence: seed ' . $_->seed . ', ' . $_->steps . ' steps per mode' for @plans;

for my $mode (@modes) {
    subtest "$mode: every checker on a fresh worker equals plain CGI" => sub {
        FcgiSpawn::Sequence->sanity(mode => $mode, requests => $checkers->{requests},
            start => sub { $start->($_[0], '--max-requests', 1) });
    };
    for my $plan (@plans) {
        subtest "$mode: sequence (seed " . $plan->seed . ') on one warm worker' => sub {
            $plan->run(mode => $mode, via => 'fastcgi', start => $start, exceptions => \@EXCEPTIONS);
        };
    }
}
done_testing;
