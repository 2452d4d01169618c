# --precompile-warm (issue 11): a precompiled registry script matching the
# glob runs once in the master, a GET with the given query and no body,
# response discarded; what its run loads from the system @INC is then
# loaded in every worker before its first request, the script's package
# starts each request as compiled (the warm run left nothing), the master's
# log names the warm run, a fork-isolation script is warmed too (its
# children find what the run loaded), one whose named subs keep file
# lexicals is not (the log says why), and an AWStats page served after a warm run is byte for byte plain CGI's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use File::Temp qw(tempdir);
use Cwd qw(realpath);
use Test::More;
use FcgiSpawn::Test;
use Test::FCGI::Spawn;

my $root = realpath(tempdir('fcgi-spawn-warm-XXXXXX', TMPDIR => 1, CLEANUP => 1));
# Text::Abbrev: a core module nothing else here loads.
spew("$root/warm.pl", <<'PERL');
use strict;
use warnings;
our $runs;
$runs++;
my $loaded_before = exists $INC{'Text/Abbrev.pm'} ? 1 : 0;
require Text::Abbrev;
print STDERR "warm.pl ran in $$: query=$ENV{QUERY_STRING} precompile=$ENV{FCGI_SPAWN_PRECOMPILE} method=$ENV{REQUEST_METHOD}\n"
    if $ENV{FCGI_SPAWN_PRECOMPILE};
print "Content-Type: text/plain\n\n";
print "runs=$runs\nloaded_before=$loaded_before\nquery=$ENV{QUERY_STRING}\n";
PERL
# Text::Tabs and Text::Wrap: core modules nothing else here loads.
spew("$root/forked.pl", <<'PERL');
our $runs;
$runs++;
my $loaded_before = exists $INC{'Text/Tabs.pm'} ? 1 : 0;
require Text::Tabs;
print "Content-Type: text/plain\n\n";
print "runs=$runs\nloaded_before=$loaded_before\n";
PERL
spew("$root/captured.pl", <<'PERL');
my $count = 0;
sub bump { return ++$count }
require Text::Wrap;
print "Content-Type: text/plain\n\ncount=", bump(), "\n";
PERL

sub lines { my ($out) = @_; return { map { /^(\w+)=(.*)$/ ? ($1 => $2) : () } split /\n/, $out } }

for my $warm (0, 1) {
    my $what = $warm ? 'warmed' : 'not warmed';
    my $d = start_daemon(workers => 1, root => $root, isolation => 'registry',
        args => [ '--precompile', "$root/*.pl", '--isolation-for', "$root/forked.pl=fork",
            '--isolation-for', "$root/captured.pl=fork",
            ($warm ? ('--precompile-warm', "$root/*.pl=who=master&n=1") : ()) ]);
    my $pid = $d->pid;
    if ($warm) {
        like $d->log_text, qr/warm\.pl ran in \Q$pid\E: query=who=master&n=1 precompile=1 method=GET/,
            'the warm run ran in the master, a GET with the query given';
        like $d->log_text, qr/--precompile-warm: ran \Q$root\E\/warm\.pl once \(GET \?who=master&n=1, response discarded\): exit status 0/,
            "the master's log names the warm run";
        like $d->log_text, qr/--precompile-warm: ran \Q$root\E\/forked\.pl once .*exit status 0/,
            'a fork-isolation script is warmed too';
        like $d->log_text, qr/\Q$root\E\/captured\.pl is not warmed: its .*bump.* keep file-scoped lexicals/,
            'a script whose named sub keeps a file lexical is not warmed, and the log says why';
    }
    else {
        unlike $d->log_text, qr/warm\.pl ran in|--precompile-warm/, 'without the setting nothing runs in the master';
    }
    # The worker's first request, and the next ones: each as if the script
    # had never run.
    for my $n (1 .. 4) {
        my $page = lines(scalar fcgi_request($d, "$root/warm.pl", query => "n=$n"));
        is $page->{runs}, 1, "$what: request $n starts with the package as compiled";
        is $page->{query}, "n=$n", "$what: ... and sees its own query";
        is $page->{loaded_before}, $warm, "$what: ... Text::Abbrev " . ($warm ? 'already loaded' : 'not loaded')
            . ' before its require' if $n == 1;
    }
    for my $n (1 .. 3) {
        my $page = lines(scalar fcgi_request($d, "$root/forked.pl"));
        is $page->{runs}, 1, "$what: fork request $n starts with the package as compiled";
        is $page->{loaded_before}, $warm, "$what: ... its child finds Text::Tabs "
            . ($warm ? 'already loaded' : 'not loaded');
        is lines(scalar fcgi_request($d, "$root/captured.pl"))->{count}, 1,
            "$what: the file lexical of a script not warmed starts at its compiled value ($n)";
    }
    unlike $d->log_text, qr/could not be restored|killed by SIG/, "$what: no restore failure, no crash";
    is $d->stop, 0, "$what: stopped";
}

# An AWStats page after a warm run of awstats.pl: plain CGI's bytes.
SKIP: {
    require FcgiSpawn::Apps::Awstats;
    my $app = FcgiSpawn::Apps::Awstats::setup(tempdir('fcgi-spawn-warm-aw-XXXXXX', TMPDIR => 1, CLEANUP => 1));
    skip $app->{skip}, 5 if $app->{skip};
    my %page = map { $_->{name} => $_ } @{ $app->{sources}[0]{requests} };
    my $script = $page{'awstats main'}{script};
    my $site = Test::FCGI::Spawn->start(roots => $app->{roots}, isolation => 'registry',
        env => $app->{env}, preload => $app->{preload}, binary => FcgiSpawn::Test::bin_path(),
        args => [ '--precompile', $script, '--precompile-warm', "$script=$page{'awstats main'}{query}" ]);
    like $site->log_text, qr/--precompile-warm: ran \Q$script\E once .*exit status 0/, 'awstats.pl warmed';
    for my $name ('awstats main', 'awstats output=allhosts', 'awstats output=browserdetail', 'awstats main') {
        my $r = $site->compare($page{$name});
        ok $r->{same}, "after the warm run, $name equals plain CGI" or diag $r->{diff};
    }
    $site->stop;
}
done_testing;
