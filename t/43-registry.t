# --isolation registry: each script is compiled once per worker and reused;
# a changed file is compiled again; per-request state (%ENV, cwd, CGI.pm
# params, __DATA__, END blocks, exit/die) still behaves per request, and the
# script's package globals start each run as they were right after the
# compile (what a BEGIN block set stays, what the last run set goes).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP qw(decode_json);
use File::Temp qw(tempdir);
use FcgiSpawn::Test;

my $dir = tempdir('fcgi-spawn-registry-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $script = "$dir/reg.pl";
my $source = <<'PERL';
#!/usr/bin/perl
use strict;
use warnings;
use CGI;
our $compiles;
BEGIN { $compiles++; print STDERR "registry compiling\n" }
our $runs;
$runs++;
my $q = CGI->new;
print $q->header('text/plain');
print "version=VERSION\n";
print "compiles=$compiles runs=$runs\n";
print 'name=', ($q->param('name') // ''), "\n";
print 'env=', ($ENV{REG_LEAK} // 'clean'), "\n";
$ENV{REG_LEAK} = 'leaked';
print "data=", scalar(<DATA>);
END { print STDERR "registry END block ran\n" }
exit 3 if $q->param('exit');
die "registry-die-marker\n" if $q->param('die');
__DATA__
first data line
PERL
(my $v1 = $source) =~ s/VERSION/one/;
spew($script, $v1);

my $d = start_daemon(workers => 1, root => [$dir], isolation => 'registry', preload => ['CGI']);
my @runs;
for my $n (1 .. 3) {
    my ($out) = fcgi_request($d, $script, query => "name=n$n");
    push @runs, $out;
    like $out, qr/^compiles=1 runs=1$/m, "request $n: BEGIN's value kept, the last run's gone";
    like $out, qr/^name=n$n$/m, "request $n: CGI.pm sees this request's params";
    like $out, qr/^env=clean$/m, "request $n: %ENV starts clean";
    like $out, qr/^data=first data line$/m, "request $n: __DATA__ readable again";
}
my $ends = () = $d->log_text =~ /registry END block ran/g;
is $ends, 3, 'the END block ran after each request';
my $compiles = () = $d->log_text =~ /registry compiling/g;
is $compiles, 1, 'compiled once for the three requests';

my ($out, undef, $rc) = fcgi_request($d, $script, query => 'exit=1');
like $out, qr/^version=one$/m, 'exit: page delivered';
($out) = fcgi_request($d, $script, query => 'die=1');
like $d->log_text, qr/registry-die-marker/, 'die: message logged';

# Same size, new mtime: compiled again.
(my $v2 = $source) =~ s/VERSION/two/;
sleep 1;
spew($script, $v2);
($out) = fcgi_request($d, $script);
like $out, qr/^version=two$/m, 'a changed file is compiled again';
like $out, qr/^compiles=1 runs=1$/m, 'in a fresh package';
$compiles = () = $d->log_text =~ /registry compiling/g;
is $compiles, 2, 'compiled a second time';

$d->stop;

# A module a script loads at run time or from a BEGIN block, whose
# top-level package the script's compile made before the module loaded:
# the module stays whole in the worker for the next script (gzip-tie.pl
# needs Compress::Raw::Zlib::Deflate->new). It lost every sub before.
for my $mode (qw(registry fork)) {
    for my $loader (qw(require-module-runtime.pl require-module-begin.pl)) {
        my $d = start_daemon(workers => 1, isolation => $mode);
        my $first = script_path("poison/$loader");
        fcgi_request($d, $first) for 1 .. 2;
        my ($out) = fcgi_request($d, script_path('poison/gzip-tie.pl'));
        my $page = parse_cgi($out);
        my $text = eval { require IO::Uncompress::Gunzip; IO::Uncompress::Gunzip::gunzip(\$page->{body}, \my $t); $t } // '';
        like $text, qr/^line 50 of a page gzipped in perl$/m, "$mode: $loader, then a gzipped page: complete";
        unlike $d->log_text, qr/Can't locate object method/, "$mode: $loader, then a gzipped page: no method lost";
        ($out) = fcgi_request($d, $first);
        like $out, qr/^(?:crc32=\d+|zlib=yes)$/m, "$mode: $loader again";
        $d->stop;
    }
}
# A plain file of tables a registry script requires at run time (as
# AWStats does) is loaded once and kept, and every run finds its tables as
# loaded, whatever the last run wrote into them.
{
    my $loads = "$dir/table-loads";
    my $d = start_daemon(workers => 1, isolation => 'registry', args => [ '--env', "FCGI_SPAWN_TABLE_LOADS=$loads" ]);
    my @out = map { scalar fcgi_request($d, 'poison/kept-table.pl', query => $_ % 2 ? 'reverse' : '') } 1 .. 4;
    for my $i (0 .. $#out) {
        like $out[$i], qr/as loaded: red=ff0000,green=00ff00,blue=0000ff; count 2;/,
            "run @{[ $i + 1 ]}: the tables as loaded, whatever the last run wrote";
    }
    my @lines = split /\n/, slurp($loads);
    is scalar(@lines), 1, 'the plain file was loaded once, not once a run' or diag "@lines";
    $d->stop;
}
# A script whose named subs keep file-scoped lexicals cannot run twice in
# one process ("Variable will not stay shared"): registry keeps it compiled
# once in the worker and runs each request in a child, as fork isolation
# does. Never compiled per request behind the user's back.
{
    my $compiles = "$dir/shared-compiles";
    my $shared = "$dir/shared.pl";
    spew($shared, <<'PERL');
#!/usr/bin/perl
use strict;
use warnings;
BEGIN {
    if (my $log = $ENV{FCGI_SPAWN_COMPILES}) { open my $fh, '>>', $log or die; print {$fh} "compiled\n" }
}
my $count = 0;
my @seen;
sub bump { $count++; push @seen, $$; return $count }
bump();
print "Content-Type: text/plain\n\ncount=$count seen=", scalar(@seen), "\n";
PERL
    my $d = start_daemon(workers => 1, isolation => 'registry', root => $dir,
        args => [ '--env', "FCGI_SPAWN_COMPILES=$compiles" ]);
    my %pid;
    for my $n (1 .. 4) {
        my ($out) = fcgi_request($d, $shared);
        like $out, qr/^count=1 seen=1$/m, "request $n: the sub's file lexicals as in a new process";
    }
    my @lines = split /\n/, slurp($compiles);
    is scalar(@lines), 1, 'compiled once, in the worker' or diag "@lines";
    like $d->log_text, qr/\Q$shared\E runs in a child per request \(fork isolation\), not in the worker: its sub bump[^\n]* keep file-scoped lexicals/,
        'one log line says how it runs, and why';
    my @said = $d->log_text =~ /runs in a child per request/g;
    is scalar(@said), 1, 'said once';
    $d->stop;
    # The status page says how each worker's last script ran (the worker
    # answering it shows the status request: retried until the other one
    # has served the script and ended its request).
    $d = start_daemon(workers => 2, isolation => 'registry', root => $dir,
        args => [ '--status-path', '/fcgi-status' ]);
    my $status_of = sub {
        my ($script) = @_;
        for (1 .. 20) {
            fcgi_request($d, $script);
            my $json = qx{@{[ bin_path() ]} status --connect @{[ $d->socket ]} --status-path /fcgi-status --json};
            my ($row) = grep { $_->{script} eq $script } @{ decode_json($json)->{workers} };
            # "-" while that worker is still ending the request.
            return $row->{isolation} if $row && $row->{isolation} ne '-';
        }
        return 'never shown';
    };
    is $status_of->($shared), 'registry-in-child', 'the status page shows the script runs in a child';
    is $status_of->("$dir/reg.pl"), 'registry', '... and a plain registry script as registry';
    $d->stop;
}
# A top-level name the script's compile made and keeps hidden between its
# runs (main::Search::, from its `require Search::Dict`) made meanwhile by
# another script: the script is compiled again, in the same worker, and
# the old compile goes without a trace the worker would have to answer
# for. (t/28's fork-isolation warm run is where a sub outliving its
# package once left perl's __ANON__::__ANON__ in main::.)
{
    my $later = "$dir/loads-later.pl";
    my $loader = "$dir/loads-now.pl";
    spew($later, <<'PERL');
BEGIN { if (my $log = $ENV{FCGI_SPAWN_COMPILES}) { open my $fh, '>>', $log or die; print {$fh} "compiled\n" } }
sub greet { return "hello from $$" }
require Search::Dict if ($ENV{QUERY_STRING} // '') eq 'load';
print "Content-Type: text/plain\n\n", greet(), "\n";
PERL
    spew($loader, "require Search::Dict;\nprint \"Content-Type: text/plain\\n\\nloaded in \$\$\\n\";\n");
    for my $round (1 .. 6) {
        my $compiles = "$dir/later-compiles-$round";
        my $d = start_daemon(workers => 1, isolation => 'registry', root => $dir,
            args => [ '--env', "FCGI_SPAWN_COMPILES=$compiles" ]);
        my ($first) = fcgi_request($d, $later);
        my ($pid) = $first =~ /hello from (\d+)/;
        like scalar(fcgi_request($d, $loader)), qr/loaded in \Q$pid\E/, "round $round: the other script loads the name";
        like scalar(fcgi_request($d, $later)), qr/hello from \Q$pid\E/, "round $round: compiled again, same worker";
        like scalar(fcgi_request($d, $later)), qr/hello from \Q$pid\E/, "round $round: ... and the worker kept";
        is slurp($compiles), "compiled\ncompiled\n", "round $round: compiled twice (the name was taken once)";
        unlike $d->log_text, qr/could not be restored|will be replaced/, "round $round: the worker could vouch for its state";
        $d->stop;
    }
}
# A plain file required at run time into a package the script declares
# inside one it made (`package My::Decl;`: the in-house admin.cgi's
# `package InHouse::Admin`): kept with the script, its subs there on every
# run and its variables as loaded.
{
    my $sub = "$dir/decl";
    mkdir $sub;
    mkdir "$sub/lib";
    spew("$sub/lib/helpers.pl", "our \$LOADED_AT = 'load';\nsub helper { return 'helper in ' . __PACKAGE__ }\n1;\n");
    spew("$sub/decl.pl", <<'PERL');
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
package Decl::Admin;
our $LOADED_AT;
require 'lib/helpers.pl';
print "Content-Type: text/plain\n\n", helper(), " loaded_at=$LOADED_AT\n";
$LOADED_AT = 'changed by the run';
PERL
    my $d = start_daemon(workers => 1, isolation => 'registry', root => $dir);
    for my $n (1 .. 3) {
        like scalar(fcgi_request($d, "$sub/decl.pl")), qr/^helper in Decl::Admin loaded_at=load$/m,
            "run $n: the kept file's sub is there, its variable as loaded";
    }
    unlike $d->log_text, qr/Undefined subroutine|could not be restored/, 'no error in the log';
    $d->stop;
}
# A script compiled first after another script's run with formats: the
# formats that run installed on STDOUT are not the new script's (compiled
# in a call of its own before the request is set up, it took them as its
# own, and its `write` then printed the other script's report before its
# headers: a 502 through nginx; t/48, seed 514913357).
for my $mode (qw(registry fork)) {
    my $d = start_daemon(workers => 1, isolation => $mode);
    like scalar(fcgi_request($d, 'check/format-write.pl')), qr/^gamma\s+30$/m,
        "$mode: a script writes its report with its formats";
    my $r = parse_cgi(scalar fcgi_request($d, 'check/formats.pl'));
    is $r->{status}, 200, "$mode: the next script, compiled after it, answers";
    like $r->{body}, qr/^write: Undefined format "STDOUT" called at /m,
        "$mode: ... with no format of its own, as a new process";
    $d->stop;
}

# A script's page is the same in runs 1, 2 and 3 on one worker of each mode.
sub same_page_every_run {
    my ($script, $want, $what, @modes) = @_;
    for my $mode (@modes) {
        my $d = start_daemon(workers => 1, isolation => $mode);
        for my $n (1 .. 3) {
            is parse_cgi(scalar fcgi_request($d, $script))->{body}, $want, "$mode run $n: $what";
        }
        $d->stop;
    }
}

# File lexicals a BEGIN block set hold that value in every run, not only
# the first (perl clears the sub's lexicals when a run ends; under CGI
# every run is a first), and what a run changed in them goes.
same_page_every_run('check/begin-lexicals.pl',
    "dir ends in check: yes\nseen: compile run\nconfig: colour=blue, size=4\nnever set: undef\nsparse: -,-,c; -,b\n",
    'the file lexicals as the compile left them', qw(registry fork));

# `state` variables start afresh in every run, as in every CGI process: at
# file scope and in a named sub, with or without an initialiser, arrays and
# hashes; what one held goes after the run (its DESTROY runs).
same_page_every_run('check/state-vars.pl',
    "runs: 1\nbare: x\nseen: run\ncount: 1\nids: 101 102\nobjects alive: 1\n",
    'state variables as a new process has them', qw(perlrun registry fork));

done_testing;
