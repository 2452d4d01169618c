# --precompile (issue 11): the master compiles registry and fork scripts
# before the fork, in the environment a worker's compile sees; a script
# that does not compile is logged with file and line, the daemon starts and
# its requests get the usual 500; a script changed on disk afterwards is
# compiled again by the worker; --precompile-strict refuses to start; a
# precompiled script's page is byte for byte plain CGI's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use File::Temp qw(tempdir);
use Cwd qw(realpath);
use Test::More;
use FcgiSpawn::Test;
use Test::FCGI::Spawn;

my $root = realpath(tempdir('fcgi-spawn-precompile-XXXXXX', TMPDIR => 1, CLEANUP => 1));
mkdir "$root/app";
# Says which process compiled it (BEGIN runs at compile time) and what
# the compile saw.
my $where = <<'PERL';
use strict;
use warnings;
use FindBin;
our ($compiled_in, $begin_env, $begin_cwd, $begin_0, $bin);
BEGIN {
    require Cwd;
    $compiled_in = $$;
    $begin_env = join ',', map { "$_=" . ($ENV{$_} // '-') } qw(FCGI_SPAWN_PRECOMPILE SCRIPT_NAME REQUEST_METHOD SITE);
    $begin_cwd = Cwd::getcwd();
    $begin_0 = $0;
    $bin = $FindBin::Bin;
}
print "Content-Type: text/plain\n\n";
print "compiled_in=$compiled_in\nrunning_in=$$\nenv=$begin_env\ncwd=$begin_cwd\n0=$begin_0\nbin=$bin\nversion=1\n";
PERL
spew("$root/app/where.pl", $where);
spew("$root/app/bad.pl", "use strict;\nmy \$x = 1;\nmy \$y = ;\nprint \"not reached\\n\";\n");
spew("$root/app/hello.pl", "use strict;\nuse warnings;\nmy \$n = 0;\nprint \"Content-Type: text/plain\\n\\n\";\nprint 'hello ', ++\$n, ' ', __FILE__, ' ', __LINE__, \" \$0\\n\";\n");
spew("$root/readme.txt", "not a script\n");

sub lines { my ($out) = @_; return { map { /^(\w+)=(.*)$/ ? ($1 => $2) : () } split /\n/, $out } }

for my $mode (qw(registry fork)) {
    my $d = start_daemon(workers => 2, root => $root, isolation => $mode,
        args => [ '--precompile', "$root/**", '--env', 'SITE=x' ]);
    like $d->log_text, qr/precompiled 2 script\(s\) in \d+ ms, 1 failed/, "$mode: two compiled, one failed";
    my $bad = "$root/app/bad.pl";
    like $d->log_text, qr/--precompile: \Q$bad\E does not compile .*syntax error at \Q$bad\E line 3/,
        "$mode: the failure is logged with file and line";

    my $page = lines(scalar fcgi_request($d, "$root/app/where.pl"));
    is $page->{compiled_in}, $d->pid, "$mode: compiled in the master";
    isnt $page->{running_in}, $d->pid, "$mode: run in a worker (or its child)";
    is $page->{env}, 'FCGI_SPAWN_PRECOMPILE=1,SCRIPT_NAME=/app/where.pl,REQUEST_METHOD=GET,SITE=x',
        "$mode: the compile saw the worker's environment, SCRIPT_NAME under the root";
    is $page->{cwd}, "$root/app", "$mode: ... cwd the script's directory";
    is $page->{0}, "$root/app/where.pl", "$mode: ... \$0 the script";
    is $page->{bin}, "$root/app", "$mode: ... FindBin the script's directory";

    my ($out) = fcgi_request($d, $bad);
    is parse_cgi($out)->{status}, 500, "$mode: the script that failed to precompile: 500";
    unlike $out, qr/not reached/, "$mode: ... and nothing of it ran";
    like parse_cgi(scalar fcgi_request($d, "$root/app/hello.pl"))->{body}, qr/^hello /, "$mode: the daemon serves";

    # Changed on disk: the worker that sees it compiles the new text.
    (my $v2 = $where) =~ s/version=1/version=2/;
    spew("$root/app/where.pl", $v2);
    utime time + 5, time + 5, "$root/app/where.pl";
    for (1 .. 4) {    # whichever worker answers
        my $again = lines(scalar fcgi_request($d, "$root/app/where.pl"));
        is $again->{version}, 2, "$mode: changed on disk: the new text runs";
        isnt $again->{compiled_in}, $d->pid, "$mode: ... compiled again, not in the master";
    }
    spew("$root/app/where.pl", $where);
    unlike $d->log_text, qr/could not be restored|killed by SIG/, "$mode: no restore failure, no crash";
    is $d->stop, 0, "$mode: stopped";
}

# Byte for byte what plain CGI gives, after the precompile.
{
    my $site = Test::FCGI::Spawn->start(roots => [$root], isolation => 'registry',
        binary => FcgiSpawn::Test::bin_path(), args => [ '--precompile', "$root/app/hello.pl" ]);
    for (1 .. 2) {
        ok $site->compare({ script => "$root/app/hello.pl" })->{same}, "precompiled hello.pl equals plain CGI (request $_)";
    }
    $site->stop;
}

# Nothing to precompile in perlrun; a glob that matches nothing is named.
{
    my $d = start_daemon(workers => 1, root => $root,
        args => [ '--precompile', "$root/app/*.pl", '--precompile', "$root/none/*.pl" ]);
    like $d->log_text, qr/3 matching script\(s\) run in perlrun isolation/, 'perlrun: not precompiled, said so';
    like $d->log_text, qr/--precompile \Q$root\E\/none\/\*\.pl: matches no script/, 'a glob matching nothing is logged';
    $d->stop;
}

# --precompile-strict: a script that does not compile stops the start.
{
    my @argv = (FcgiSpawn::Test::bin_path(), 'run', '--listen', "$root/strict.sock", '--workers', '1',
        '--isolation', 'registry', '--root', $root, '--log', '/dev/stdout', '--precompile', "$root/app/*.pl",
        '--precompile-strict');
    # stderr too: the daemon also tells the terminal, which is not prove's.
    open my $fh, '-|', 'sh', '-c', '"$@" 2>&1', 'sh', @argv or die "@argv: $!";
    my $out = do { local $/; <$fh> };
    close $fh;
    isnt $? >> 8, 0, '--precompile-strict: the daemon does not start';
    like $out, qr/--precompile-strict: 1 script\(s\) did not compile \(\Q$root\E\/app\/bad\.pl\)/,
        '... and names the script';
    ok !-e "$root/strict.sock", '... and leaves no socket';
}
# A reload precompiles on its own, in registry and fork isolation, what the
# previous generation served: the new workers do not compile it again.
for my $mode (qw(registry fork)) {
    my $d = start_daemon(workers => 1, root => $root, isolation => $mode);
    my $first = lines(scalar fcgi_request($d, "$root/app/where.pl"));
    isnt $first->{compiled_in}, $d->pid, "$mode: no --precompile: compiled by the worker";
    kill 'HUP', $d->pid;
    ok wait_for(sub { $d->log_text =~ /precompiled 1 script\(s\) in \d+ ms \(1 of them served by the previous generation\)/ }, 20),
        "$mode: the reload precompiled the script the last generation served" or diag $d->log_text;
    ok wait_for(sub { my $p = lines(scalar fcgi_request($d, "$root/app/where.pl")); ($p->{compiled_in} // 0) == $d->pid }, 20),
        "$mode: the new generation's workers find it compiled in the master";
    $d->stop;
}
done_testing;
