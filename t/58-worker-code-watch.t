# A sub of the worker's preloaded modules that a script replaces at run
# time is put back after the request (code.c). The check walks the
# worker's packages only after a request did something that can put a sub
# in a glob (a compile, an assignment to a glob, `undef` of a sub or glob,
# the runner's own installs); a quiet request skips it (SPEC §8). Each way
# is tried on a worker whose last requests were quiet (the walk skipped),
# in registry (no compile: only the watch tells) and perlrun (the compile
# every request walks anyway, the reference), and every run is compared
# with plain CGI: the run after a replacement must start with CGI.pm's own
# sub, as a new process does. Also a script that defines the sub in its
# own text (`sub CGI::escapeHTML {...}`, `package CGI;`, `sub
# CGI'escapeHTML`), which perlrun compiles every request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use Test::More;
use FcgiSpawn::Test qw(bin_path);
use Test::FCGI::Spawn;

$ENV{FCGI_SPAWN_BIN} //= bin_path();
my $script = "$FindBin::Bin/scripts/poison/worker-sub-ways.pl";
my $hello = "$FindBin::Bin/scripts/hello.pl";
my @ways = qw(glob_assign symbolic list_assign in_a_sub do_file package_stash);
# Without Package::Stash (libmoose-perl brings its XS backend) that way
# changes nothing, on either side.
my $have_stash = eval { require Package::Stash; 1 };

sub same_as_cgi {
    my ($site, $req, $what) = @_;
    my $res = $site->compare($req);
    ok $res->{same}, $what or diag Test::FCGI::Spawn::describe_difference($res);
    return $res;
}

# registry twice: Package::Stash loaded by the script's compile (the
# worker's records added to), and preloaded (recorded in the master).
for my $run (['registry', ['CGI']], ['registry', [qw(CGI Package::Stash)]], ['perlrun', ['CGI']]) {
    my ($mode, $preload) = @$run;
    my $site = Test::FCGI::Spawn->start(roots => ["$FindBin::Bin/scripts"], isolation => $mode,
        preload => $preload, workers => 1);
    $mode .= " (preloading @$preload)";
    my ($worker) = $site->worker_pids;
    same_as_cgi($site, { script => $script }, "$mode: a quiet run (compiled here in registry)");
    for my $way (@ways) {
        same_as_cgi($site, { script => $hello }, "$mode: another script, quiet, before $way");
        same_as_cgi($site, { script => $script }, "$mode: this one, quiet, before $way");
        my $res = same_as_cgi($site, { script => $script, query => "how=$way" }, "$mode: replaced by $way");
        my $now = $way eq 'package_stash' && !$have_stash ? '&lt;&amp;&gt;' : 'poisoned';
        like $res->{persistent_text}, qr/as the run starts: &lt;&amp;&gt;\nreplaced by: $way, now: \Q$now\E/,
            "$mode: $way replaced the sub for the rest of its run";
        same_as_cgi($site, { script => $script }, "$mode: the next run starts with CGI.pm's sub after $way");
        same_as_cgi($site, { script => $hello }, "$mode: and so does another script's");
    }
    # A script whose own text defines the sub (compile time): perlrun
    # skips the check after a compile only for a text that names no
    # package and no sub outside its own (Compile::defines_elsewhere).
    for my $how (qw(qualified package old-style)) {
        my $definer = "$FindBin::Bin/scripts/poison/define-worker-sub-$how.pl";
        same_as_cgi($site, { script => $hello }, "$mode: quiet, before a definition ($how)");
        same_as_cgi($site, { script => $definer }, "$mode: CGI::escapeHTML defined by the script's text ($how)");
        same_as_cgi($site, { script => $script }, "$mode: the next script starts with CGI.pm's sub ($how)");
    }
    is_deeply [ $site->worker_pids ], [$worker], "$mode: one worker served it all (none replaced)";
    unlike $site->log_text, qr/could not be restored/, "$mode: nothing it could not put back";
    is $site->stop, 0, "$mode: stopped";
}

done_testing;
