# What belongs to a script goes with it, on a worker that has already
# served it and others (SPEC §3.6): a CGI::Fast or FCGI accept loop runs its
# body once per request; an importer that remembers the packages it served
# (Log::Log4perl's :easy) exports again; a module from the script's own
# `use lib` directory (outside the roots and the daemon's @INC) starts as
# loaded, and a plain file its module `do`es lands in that module's
# package of this request (not in one an earlier request made), also when
# its top-level name is a module's of the worker (Data::SiteCounter beside
# Data::Dumper) or becomes one at run time (Digest::SiteSum, then
# Digest::MD5), with no handle of it left open in the worker; classes a
# script builds with Moo, Class::Accessor, constant and Exporter are built
# again. Each request is compared with the same request
# run as a plain CGI process, in every mode, twice or more on one worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use FcgiSpawn::Test qw(scripts_dir open_files files_left_open);
use Test::FCGI::Spawn;

$ENV{FCGI_SPAWN_BIN} //= FcgiSpawn::Test::bin_path();
my $scripts = scripts_dir();
my %request = (
    loop       => { script => "$scripts/poison/cgi-fast-loop.pl", query => 'name=first' },
    loop2      => { script => "$scripts/poison/cgi-fast-loop.pl", query => 'name=second' },
    fcgi       => { script => "$scripts/poison/fcgi-request-loop.pl", query => 'q=1' },
    log4perl   => { script => "$scripts/poison/log4perl-easy.pl" },
    own_lib    => { script => "$scripts/poison/own-lib-state.pl" },
    own_check  => { script => "$scripts/check/own-lib.pl" },
    classes    => { script => "$scripts/check/classes.pl" },
    own_do     => { script => "$scripts/check/own-lib-do.pl" },
    shared_top => { script => "$scripts/check/own-lib-shared.pl" },
    released   => { script => "$scripts/check/own-lib-released.pl" },
);
# Each twice or more, the repros' order first (a loop, then the loop
# again; the importer twice; the module switched, then read).
my @order = qw(loop loop2 loop fcgi fcgi loop log4perl log4perl own_lib own_check own_lib own_check
    classes classes loop2 own_check log4perl own_do own_do own_do
    shared_top shared_top released own_check released shared_top released);

for my $mode (qw(perlrun registry fork)) {
    my $site = Test::FCGI::Spawn->start(roots => [$scripts], isolation => $mode, preload => ['CGI']);
    my ($worker) = $site->worker_pids;
    my $files_at_start = open_files($worker);
    for my $i (0 .. $#order) {
        my $req = { %{ $request{ $order[$i] } }, name => "$order[$i] #$i" };
        $site->same_as_cgi($req, "$mode: $req->{name} as under plain CGI");
    }
    # What the site module and the script opened went with the request, and
    # so did the scripts' own files (but for a DATA handle).
    my @open = files_left_open($worker, $files_at_start);
    is "@open", '', "$mode: the worker holds none of the files and directories the requests opened";
    my $log = $site->log_text;
    unlike $log, qr/could not be restored|will be replaced|worker \d+ exited/,
        "$mode: one worker served them all, none retired" or diag $log;
    $site->stop;
}

# The script compiled again (its file changed): its own modules are loaded
# again with it, fresh, and still put back before each run (once, the
# recompile loaded them into the packages the first compile had left).
{
    my $tmp = tempdir('fcgi-spawn-t53-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    make_path("$tmp/site/check", "$tmp/ownlib/Data");
    copy("$FindBin::Bin/ownlib/Data/SiteCounter.pm", "$tmp/ownlib/Data/") or die "copy: $!";
    my $script = "$tmp/site/check/own-lib-shared.pl";
    copy("$scripts/check/own-lib-shared.pl", $script) or die "copy: $!";
    chmod 0755, $script;
    my $site = Test::FCGI::Spawn->start(roots => ["$tmp/site"], isolation => 'registry', preload => ['CGI']);
    my $req = { script => $script, name => 'own-lib-shared' };
    $site->same_as_cgi($req, "registry: $req->{name} as under plain CGI");
    utime time, time + 5, $script;
    $site->same_as_cgi($req, "registry: $req->{name}, compiled again, as under plain CGI");
    unlike $site->log_text, qr/redefined/, 'registry: the compile again made its modules anew (no sub redefined)';
    $site->stop;
}

done_testing;

