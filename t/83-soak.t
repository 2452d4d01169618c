# bench/soak, short: a mixed load (GETs, POSTs, uploads spilled or not,
# scripts that die or exit, clients that close mid-response or send
# FCGI_ABORT_REQUEST, requests past --request-timeout) in each isolation
# mode, and after it every worker has exactly the descriptors and threads
# it had after the warm-up, the daemon's TMPDIR the files it had, no
# worker crashed and every response was right. Memory and symbol counts
# are printed, not judged: a run this short measures malloc's steps, not
# a leak (the full run, 200,000 requests a mode, is bench/soak's).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test qw(bin_path slurp);

my $bin = bin_path();
my $tmp = tempdir('fcgi-spawn-soak-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @cmd = ($^X, "$FindBin::Bin/../bench/soak", '--modes', 'perlrun:1500,registry:1500,fork:800',
    '--samples', 2, '--out', "$tmp/soak");
local $ENV{FCGI_SPAWN_BIN} = $bin;
my $output = `@cmd 2>&1`;
my $status = $?;
ok -s "$tmp/soak.tsv", 'bench/soak wrote its figures' or diag "exit status $status:\n$output";

my %rows;
for my $line (split /\n/, slurp("$tmp/soak.tsv")) {
    my ($mode, $who, $resource, $warm, $end, $growth, $limit, $verdict) = split /\t/, $line;
    next if $mode eq 'mode';
    push @{ $rows{$mode} }, { who => $who, resource => $resource, warm => $warm, end => $end, verdict => $verdict };
}
my $judged = qr/^(?:fds|deleted_fds|threads|temp files|workers|crashed workers|bad responses)\z/;
for my $mode (qw(perlrun registry fork)) {
    my @rows = @{ $rows{$mode} || [] };
    ok @rows, "$mode: figures reported";
    my @exact = grep { $_->{resource} =~ $judged } @rows;
    ok((grep { $_->{resource} eq 'fds' && $_->{who} =~ /^worker/ } @exact), "$mode: workers' descriptors sampled");
    for my $r (@exact) {
        is $r->{verdict}, 'PASS', "$mode: $r->{who} $r->{resource} flat ($r->{warm} after the warm-up, $r->{end} at the end)";
    }
    for my $r (grep { $_->{resource} !~ $judged } @rows) {
        note "$mode: $r->{who} $r->{resource}: $r->{warm} -> $r->{end} ($r->{verdict})";
    }
}
diag $output if grep { $_->{verdict} ne 'PASS' && $_->{resource} =~ $judged } map { @$_ } values %rows;
done_testing;
