# Every object a script kept goes at the end of its request, its DESTROY
# run before the response ends, as at a CGI process's exit (global
# destruction: all code still there). perlrun: before the sandbox and the
# packages the script declared are deleted, what they and its main::
# names hold is freed (an object's class may be one of those packages). A
# request's child (fork isolation, and a registry script whose named subs
# keep file lexicals) frees what the script's packages, its compiled entry
# and its subs' captured and `state` variables hold, but not the compiled
# code, which would copy every page of it from the worker (SPEC §8). Each
# place an object can be kept is in t/scripts/check/destroy-at-exit.pl,
# and every run is compared with plain CGI, DESTROY lines in any order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use Test::More;
use FcgiSpawn::Test qw(bin_path);
use Test::FCGI::Spawn;

$ENV{FCGI_SPAWN_BIN} //= bin_path();
my $script = "$FindBin::Bin/scripts/check/destroy-at-exit.pl";
my $hello = "$FindBin::Bin/scripts/hello.pl";
my $loader = "$FindBin::Bin/scripts/check/destroy-loaded.pl";
my $request = { script => $script, sort_lines => 1, sort_lines_match => qr/^destroyed: / };
my @places = (
    'in a package scalar', 'in a package array', 'nested in a package hash', 'held by a closure',
    'in a main:: name', 'in a package the script declares', 'in a file lexical a named sub keeps',
    'in a state variable', 'in a package scalar set at compile time',
    'in a file lexical set at compile time', 'in a file lexical, while the script runs',
    'in a package of a file it loaded',
);

for my $mode (qw(perlrun registry fork)) {
    my $site = Test::FCGI::Spawn->start(roots => ["$FindBin::Bin/scripts"], isolation => $mode,
        preload => ['CGI'], workers => 1);
    my ($worker) = $site->worker_pids;
    for my $run (1 .. 3) {
        my $res = $site->compare($request);
        ok $res->{same}, "$mode, run $run: the same page and the same objects destroyed as under CGI"
            or diag Test::FCGI::Spawn::describe_difference($res);
        my %destroyed = map { $_ => 1 } $res->{persistent_text} =~ /^destroyed: (.*)$/mg;
        is_deeply [ sort keys %destroyed ], [ sort @places ], "$mode, run $run: an object in each place went"
            or diag $res->{persistent_text};
        my $other = $site->compare({ script => $hello });
        ok $other->{same}, "$mode, run $run: another script after it"
            or diag Test::FCGI::Spawn::describe_difference($other);
        # A file of the site loaded at run time declaring a package:
        # destroy-at-exit.pl loads it without naming the package, this one
        # names it in its own text first (so its compile makes the
        # package); in registry this one runs in the worker.
        my $loaded = $site->compare({ script => $loader });
        ok $loaded->{same}, "$mode, run $run: what a file it loaded keeps goes as under CGI"
            or diag Test::FCGI::Spawn::describe_difference($loaded);
    }
    is_deeply [ $site->worker_pids ], [$worker], "$mode: one worker served it all";
    unlike $site->log_text, qr/could not be restored|panic|Attempt to free/, "$mode: nothing wrong in the log";
    is $site->stop, 0, "$mode: stopped";
}

# What the worker's own modules keep is the worker's: the script imports
# a preloaded sub that keeps an object in a file lexical of its module,
# and the child leaves that object alone (under CGI the process's global
# destruction would take it too: the one difference, by design).
for my $mode (qw(perlrun registry fork)) {
    my $site = Test::FCGI::Spawn->start(roots => ["$FindBin::Bin/scripts"], isolation => $mode,
        preload => ['CGI'], preload_script => ["$FindBin::Bin/scripts/check/lib/keeper.pl"], workers => 1);
    for my $run (1 .. 2) {
        my $body = $site->request({ script => $script })->{body};
        like $body, qr/^destroyed: in a package scalar$/m, "$mode, run $run: the script's objects went";
        unlike $body, qr/the worker's object/, "$mode, run $run: the worker's module's object stayed";
    }
    is $site->stop, 0, "$mode: stopped";
}

done_testing;
