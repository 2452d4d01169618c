# Test::FCGI::Spawn runs each request twice (warm_runs) in a row on the
# daemon's one worker and compares every run with plain CGI, so a script
# that is right on a fresh worker and wrong on a warm one fails, and the
# diagnostics say "on a warm worker (run 2)". The fixture keeps state in a
# module from the system @INC, the limit fcgi-spawn documents: the first
# run prints 1, as plain CGI always does; the second prints 2.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use Test::More;
use File::Temp qw(tempdir);
use FcgiSpawn::Test qw(bin_path slurp spew);
use Test::FCGI::Spawn;

$ENV{FCGI_SPAWN_BIN} //= bin_path();
my $fixtures = "$FindBin::Bin/compare-fixtures";
my $kept = { name => 'state in a system module', script => "$fixtures/system-module-state.pl" };
my $hello = { script => "$FindBin::Bin/scripts/hello.pl", query => 'name=ann' };

for my $mode (qw(perlrun registry)) {
    my $site = Test::FCGI::Spawn->start(roots => [$fixtures, "$FindBin::Bin/scripts"], isolation => $mode);
    is $site->warm_runs, 2, "$mode: two runs per request by default";
    my $res = $site->compare($kept);
    ok !$res->{same}, "$mode: state kept in the worker: different";
    is $res->{run}, 2, "$mode: the first run that differs is run 2";
    is scalar @{ $res->{results} }, 2, "$mode: both runs compared";
    ok $res->{results}[0]{same}, "$mode: run 1, on a fresh worker, equals plain CGI";
    my $why = Test::FCGI::Spawn::describe_difference($res);
    like $why, qr/^the request ran 2 times in a row on the daemon; run 2 of 2 differs from plain CGI$/m,
        "$mode: the diagnostics say which run differs";
    like $why, qr/^different on a warm worker \(run 2\): run 1 was identical, so an earlier run left state/m,
        "$mode: ... and that its worker was warm";
    like $why, qr/^\+\+\+ persistent, run 2\n\@\@ [^\n]+\n Content-Type: text\/plain\n \n-runs in this process: 1\n\+runs in this process: 2$/m,
        "$mode: the diff is run 2's";

    my $ok = $site->compare($hello);
    ok $ok->{same}, "$mode: a script without state: both runs equal plain CGI" or diag $ok->{diff};
    is_deeply [ map { $_->{same} } @{ $ok->{results} } ], [ 1, 1 ], "$mode: ... each of them";
    is $ok->{run}, 2, "$mode: ... and the comparison returned is the last run's";
    is $site->stop, 0, "$mode: stopped";
}

# fork starts every run from the worker's clean state: the same as CGI.
{
    my $site = Test::FCGI::Spawn->start(roots => [$fixtures], isolation => 'fork');
    ok $site->compare($kept)->{same}, 'fork: both runs equal plain CGI';
    $site->stop;
}

# warm_runs => 1 is the old behaviour: one run on a fresh worker, which
# cannot see the state; 3 runs show it from run 2 on.
{
    my $site = Test::FCGI::Spawn->start(roots => [$fixtures], warm_runs => 1);
    my $res = $site->compare($kept);
    ok $res->{same}, 'warm_runs => 1: the one run meets a fresh worker and passes';
    unlike Test::FCGI::Spawn::describe_difference({ %$res, same => 0 }), qr/ran \d+ times/,
        '... and the diagnostics say nothing of runs';
    $site->stop;

    $site = Test::FCGI::Spawn->start(roots => [$fixtures], warm_runs => 3);
    $res = $site->compare($kept);
    is_deeply [ map { $_->{same} ? 1 : 0 } @{ $res->{results} } ], [ 1, 0, 0 ], 'warm_runs => 3: runs 2 and 3 differ';
    like Test::FCGI::Spawn::describe_difference($res), qr/^the request ran 3 times in a row on the daemon; runs 2 and 3 of 3 differ/m,
        '... and the diagnostics list them';
    $site->stop;

    for my $bad (0, 'two', -1) {
        eval { Test::FCGI::Spawn->start(roots => [$fixtures], warm_runs => $bad) };
        like $@, qr/^warm_runs => \Q$bad\E: give a whole number, 1 or more/, "warm_runs => $bad is refused";
    }
}

# Through nginx: the same runs, the site's warm_runs.
SKIP: {
    skip 'no nginx', 2 unless eval { Test::FCGI::Spawn::Nginx::_nginx_binary() };
    my $site = Test::FCGI::Spawn->start(roots => [$fixtures]);
    my $nginx = $site->start_nginx;
    my $res = $nginx->compare($kept);
    ok !$res->{same}, 'through nginx: different';
    is $res->{run}, 2, 'through nginx: from run 2';
    $nginx->stop;
    $site->stop;
}

# What a site owner sees: same_as_cgi fails, and its diagnostics name the
# warm run.
{
    my $dir = tempdir('fcgi-spawn-warm-runs-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    spew("$dir/site.t", <<"T");
use strict;
use warnings;
use Test::More;
use Test::FCGI::Spawn;
my \$site = Test::FCGI::Spawn->start(roots => ['$fixtures']);
\$site->same_as_cgi({ script => '$kept->{script}' });
\$site->same_as_cgi({ script => '$kept->{script}', query => 'page=2' });
\$site->stop;
done_testing;
T
    my $out = `$^X -I $FindBin::Bin/../perl $dir/site.t 2>&1`;
    isnt $? >> 8, 0, 'same_as_cgi: the test fails';
    like $out, qr/^not ok 1 - \Q$kept->{script}\E: same bytes as plain CGI$/m, 'not ok';
    like $out, qr/^(?:not )?ok 2 - \Q$kept->{script}\E\?page=2: same bytes as plain CGI$/m,
        'another page of the script: another name (its query in it)';
    like $out, qr/^# different on a warm worker \(run 2\): run 1 was identical/m, 'the diagnostics name the warm run';
}

done_testing;
