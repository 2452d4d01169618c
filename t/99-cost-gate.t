# The cost gate (SPEC §8): what a hello-world request costs a worker, in
# instructions counted by valgrind's callgrind (the same count run after
# run, whatever else the machine does: not a timed test), in each isolation
# mode, and what a 5,000-line script's request costs in registry (putting
# its 420 symbols back must stay a walk of pointers) and in fork (the
# request's child leaves the compiled script alone at its exit), against
# the budget committed in bench/cost-budget.tsv with 5 % slack. A change
# that makes a request cost more fails here, naming the
# figure and the step of the runner that grew; if the cost is wanted, the
# change says why and writes a new budget (bench/cost --write-budget).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

my $top = "$FindBin::Bin/..";
my ($valgrind) = grep { -x "$_/valgrind" } split /:/, "$ENV{PATH}:/usr/bin";
ok $valgrind, 'valgrind is installed (script/install-deps installs it)' or do { done_testing; exit };

local $ENV{FCGI_SPAWN_BIN} = $ENV{FCGI_SPAWN_BIN} || "$top/target/release/fcgi-spawn";
my $out = `$^X $top/bench/cost --gate 2>&1`;
my $status = $?;
diag $out;
is $status, 0, 'every mode within its budget of instructions per request';
done_testing;
