# A registry script's package is put back after each run by what the run
# changed: a full restore the first time, then by the stash's image
# (packages.c), which skips every glob still as the last restore left it.
# Each way a run can change its package, done once on a worker that has
# already put the package back quietly (the image is taken), must leave the
# next run as a new process starts: every run is compared with plain CGI
# (t/scripts/poison/package-changes.pl prints its state as it starts). Also
# in perlrun and fork, where nothing of this applies, as the reference.
# What no restore can undo (a sub emptied by `undef &name`, a glob made to
# share another's GP) has the script compiled again, and says so.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use Test::More;
use FcgiSpawn::Test qw(bin_path);
use Test::FCGI::Spawn;
use File::Temp ();

$ENV{FCGI_SPAWN_BIN} //= bin_path();
my $script = "$FindBin::Bin/scripts/poison/package-changes.pl";

# The changes the script knows, from its own table.
my @changes = do {
    open my $fh, '<', $script or die "$script: $!";
    local $/;
    my $source = <$fh>;
    $source =~ /^my %CHANGE = \((.*?)^\);/ms or die "$script: no %CHANGE table\n";
    $1 =~ /^\s+(\w+)\s+=>/mg;
};
cmp_ok scalar @changes, '>=', 25, 'the script names its changes';

sub same_as_cgi {
    my ($site, $query, $what) = @_;
    my $res = $site->compare({ script => $script, (defined $query ? (query => $query) : ()) });
    ok $res->{same}, $what or diag Test::FCGI::Spawn::describe_difference($res);
}

for my $mode (qw(registry perlrun fork)) {
    my $site = Test::FCGI::Spawn->start(roots => ["$FindBin::Bin/scripts"], isolation => $mode,
        preload => ['CGI'], warm_runs => 1);
    same_as_cgi($site, undef, "$mode: a quiet run");
    same_as_cgi($site, undef, "$mode: a second quiet run (registry: put back by the image)");
    for my $change (@changes) {
        same_as_cgi($site, "do=$change", "$mode: a run that changes: $change");
        same_as_cgi($site, undef, "$mode: the next run starts as compiled after: $change");
        same_as_cgi($site, undef, "$mode: and the one after it");
    }
    # Two at once, and one right after another without a quiet run between.
    same_as_cgi($site, 'do=scalar,array_push,hash_swap,sub_redefine,open_file',
        "$mode: several changes in one run");
    same_as_cgi($site, 'do=symbol_new,inner_array', "$mode: a change of shape right after");
    same_as_cgi($site, 'do=array_sort,open_dir', "$mode: and changes of values right after that");
    same_as_cgi($site, undef, "$mode: then a quiet run");
    is scalar(() = $site->log_text =~ /could not be restored|replacing the worker/g), 0,
        "$mode: no worker had to be replaced";
    # What no restore undoes, the script compiled again: said once each.
    my @again = $site->log_text =~ /its run emptied or aliased what it compiled \((\w+)\): compiled again/g;
    # Each named once: a package the script declares at the top level is
    # put back once (it was listed, and reported, twice).
    is_deeply \@again, $mode eq 'registry' ? [qw(later counter hi)] : [],
        "$mode: `undef &later`, `*counter = *other` and `undef &Inner::hi` compiled the script again"
        . ($mode eq 'registry' ? '' : ' (registry only)');
    is $site->stop, 0, "$mode: stopped";
}

# A sub of the worker's own modules emptied (`undef &CGI::escapeHTML`):
# nothing puts the body back, so the worker says it cannot vouch for
# itself after that request and is replaced; the next request finds the
# sub as a new process does.
{
    my $dir = File::Temp::tempdir('fcgi-spawn-undef-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    Test::FCGI::Spawn::spew("$dir/empty-worker-sub.pl", <<'PERL');
#!/usr/bin/perl
use strict;
use warnings;
use CGI;
my $q = CGI->new;
print $q->header('text/plain'), 'escapeHTML defined: ', (defined &CGI::escapeHTML ? 1 : 0), "\n";
undef &CGI::escapeHTML if ($ENV{QUERY_STRING} // '') eq 'undef';
PERL
    chmod 0755, "$dir/empty-worker-sub.pl";
    for my $mode (qw(registry perlrun)) {
        my $site = Test::FCGI::Spawn->start(roots => [$dir], isolation => $mode, preload => ['CGI'], warm_runs => 1);
        my ($first) = $site->worker_pids;
        for my $query ('undef', '') {
            my $res = $site->compare({ script => "$dir/empty-worker-sub.pl", query => $query });
            ok $res->{same}, "$mode: a worker's sub emptied (?$query): as plain CGI"
                or diag Test::FCGI::Spawn::describe_difference($res);
        }
        like $site->log_text, qr/could not be restored \(the worker's sub &CGI::escapeHTML, emptied by undef not restored\)/,
            "$mode: the worker said which sub it lost";
        my ($now) = $site->worker_pids;
        isnt $now, $first, "$mode: ... and was replaced";
        $site->stop;
    }
}

done_testing;
