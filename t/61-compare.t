# fcgi-spawn compare: a request as plain CGI and several times on one
# worker of a daemon it starts itself; "identical" and exit 0, or a diff
# and exit 1, naming the first run that differs and whether its worker was
# warm; exit 2 for what it cannot run; nothing left running, also after
# Ctrl-C.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use FcgiSpawn::Test;

my $bin = bin_path();
my $site = tempdir('fcgi-spawn-compare-site-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# compare's own temp dirs go here, so the test sees that they are removed.
my $tmp = tempdir('fcgi-spawn-compare-tmp-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my %scripts = (
    'hello.pl' => <<'PL',
use strict;
use warnings;
use CGI;
my $q = CGI->new;
print $q->header('text/plain'), 'hello ', ($q->param('name') // 'world'), "\n";
PL
    # A hash a BEGIN block made, kept in a file lexical: registry copies
    # the lexical back before each run, but it is the same hash every time
    # (README's limit: one level deep); plain CGI starts it afresh.
    'state.pl' => <<'PL',
use strict;
use warnings;
my $count;
BEGIN { $count = { n => 0 } }
$count->{n}++;
print "Content-Type: text/plain\n\nn=$count->{n}\n";
PL
    'post.pl' => <<'PL',
use strict;
use warnings;
binmode STDIN;
my $body = do { local $/; <STDIN> } // '';
print "Content-Type: text/plain\n\n$ENV{REQUEST_METHOD} $ENV{CONTENT_TYPE} $ENV{CONTENT_LENGTH}\n[$body]\n";
PL
    'params.pl' => <<'PL',
use strict;
use warnings;
use Cwd qw(getcwd);
print "Content-Type: text/plain\n\n";
print "$_=", ($ENV{$_} // '-'), "\n" for qw(HTTP_X_PROBE SITE_NAME QUERY_STRING REQUEST_URI);
print "argv=@ARGV\ncwd=", getcwd(), "\n";
PL
    'pid.pl' => "print \"Content-Type: text/plain\\n\\npid=\$\$\\n\";\n",
    'nothing.pl' => "use strict;\nmy \$x = 1;\n",
    'slow.pl' => <<'PL',
# Sleeps only when run persistently.
$| = 1;
sleep 60 if $FCGI::Spawn::PERSISTENT;
print "Content-Type: text/plain\n\nawake\n";
PL
    'notes.txt' => "not a script\n",
    # Rows in hash order, as AWStats' with equal counts: another order in
    # every perl process, plain CGI's two runs included.
    'hash-order.pl' => <<'PL',
my %rows = map { ("row $_" => 1) } 1 .. 40;
print "Content-Type: text/plain\n\n";
print "$_\n" for keys %rows;
PL
);
for my $name (keys %scripts) {
    spew("$site/$name", $scripts{$name});
}

# Runs `fcgi-spawn compare @args` (TMPDIR = $tmp); returns (stdout,
# stderr, exit code).
sub compare {
    my (@args) = @_;
    my $out = "$tmp/../compare.out.$$";
    my $err = "$tmp/../compare.err.$$";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $ENV{TMPDIR} = $tmp;
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        exec $bin, 'compare', @args or POSIX::_exit(127);
    }
    my $deadline = time + 120;
    while (waitpid($pid, WNOHANG) == 0) {
        if (time > $deadline) { kill 'KILL', $pid; waitpid $pid, 0; last }
        sleep 0.05;
    }
    my $rc = $? >> 8;
    my @r = (slurp($out), slurp($err), $rc);
    unlink $out, $err;
    return @r;
}

# Pids in a verbose run's output: the daemon's (its log) and the worker's
# (pid.pl prints it).
sub logged_pids {
    my ($text) = @_;
    my %pids = map { $_ => 1 } ($text =~ /fcgi-spawn\[(\d+)\]/g, $text =~ /^\+pid=(\d+)$/mg);
    return sort keys %pids;
}

# Pids of the children of $pid, from /proc.
sub children_of {
    my ($pid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = slurp($stat) or next;
        push @kids, $1 if $s =~ /^(\d+) .*\) \S+ (\d+) / && $2 == $pid;
    }
    return @kids;
}

sub nothing_left {
    my ($what, $out) = @_;
    opendir my $dh, $tmp or die "$tmp: $!";
    my @left = grep { !/^\.\.?$/ } readdir $dh;
    is_deeply \@left, [], "$what: compare's temp dir removed";
    if (defined $out) {
        my @pids = logged_pids($out);
        ok @pids >= 2, "$what: the log names the daemon and its worker (@pids)";
        my @alive = grep { kill 0, $_ } @pids;
        is_deeply \@alive, [], "$what: no daemon or worker left running";
    }
}

# --- identical ------------------------------------------------------------------
{
    my ($out, $err, $rc) = compare('--root', $site, '--preload', 'CGI', "$site/hello.pl", 'name=ann');
    is $rc, 0, 'hello.pl: exit 0' or diag "$out\n$err";
    like $out, qr/^perlrun: identical \(3 runs on one warm worker\)$/m, 'hello.pl: perlrun identical';
    like $out, qr/^identical\n\z/m, 'last line: identical';
    like $out, qr/^persistent: one worker, warm-up \Q$site\E\/hello\.pl, then the request 3 times$/m,
        'the script without its query warms the worker up';
    nothing_left('hello.pl');
}

# --- different --------------------------------------------------------------------
{
    my ($out, $err, $rc) = compare('--mode', 'all', "$site/state.pl");
    is $rc, 1, 'state.pl --mode all: exit 1' or diag "$out\n$err";
    like $out, qr/^perlrun: identical/m, 'perlrun identical';
    like $out, qr/^fork: identical/m, 'fork identical';
    like $out, qr/^registry: different from plain CGI on a warm worker \(run 2\): runs 2 and 3 of 3 differ$/m,
        'registry: different on a warm worker, from run 2 on';
    like $out, qr/^    \(run 1 was identical: an earlier run left state in the worker that changes this page\)$/m,
        'says run 1 was identical';
    like $out, qr/^perlrun: identical \(3 runs on one worker, warm from run 2 on\)$/m,
        'no warm-up page: run 1 meets a fresh worker';
    like $out, qr/^--- plain CGI\n\+\+\+ registry, run 2\n\@\@ -1,3 \+1,3 \@\@\n Content-Type: text\/plain\n \n-n=1\n\+n=2\n/m,
        'a unified diff of run 2';
    like $out, qr/^-n=1\n\+n=3$/m, 'and of run 3';
    like $out, qr/^different\n\z/m, 'last line: different';
    nothing_left('state.pl');
}

# The configured mode: a registry rule for the script applies without --mode.
{
    my $conf = "$site/../compare-site.toml";
    # A dynamic pool would start a second worker while the first is busy;
    # compare's daemon keeps one, in the foreground.
    spew($conf, qq{root = ["$site"]\nisolation_for = ["$site/state*=registry"]\n}
        . qq{pool = "dynamic"\nmin_spare = 2\nmax_spare = 3\ndetach = true\nlog = "$site/../compare-site.log"\n});
    my ($out, $err, $rc) = compare('--config', $conf, "$site/state.pl");
    is $rc, 1, 'config file isolation_for: exit 1' or diag "$out\n$err";
    like $out, qr/^registry: different from plain CGI on a warm worker \(run 2\)/m,
        'the mode the config gives the script, on one worker despite the dynamic pool';
    ($out, $err, $rc) = compare('--config', $conf, '--repeat', '1', "$site/state.pl");
    is $rc, 0, '--repeat 1: one run, nothing to leak' or diag "$out\n$err";
    like $out, qr/^registry: identical \(1 run, on a fresh worker\)$/m, 'one run';
    like $out, qr/^note: one run and no warm-up page: .*leave --repeat at 2 or more\)$/m,
        'says one run on a fresh worker cannot show what a run leaves';
    # max_requests stays the user's: a run that gets a new worker is fresh.
    ($out, $err, $rc) = compare('--config', $conf, '--max-requests', '2', "$site/state.pl");
    is $rc, 1, '--max-requests 2: exit 1' or diag "$out\n$err";
    like $out, qr/^registry: different from plain CGI on a warm worker \(run 2\): run 2 of 3 differs$/m,
        'run 3 meets a new worker and is identical';
    unlink "$site/../compare-site.log";
    unlink $conf;
}

# State a script leaves in a module from the system @INC stays in the worker
# (the documented limit): right on a fresh worker, wrong from run 2 on, and
# compare says so. fork starts every run from the worker's clean state.
{
    my $fixture = "$FindBin::Bin/compare-fixtures/system-module-state.pl";
    my ($out, $err, $rc) = compare('--mode', 'all', $fixture);
    is $rc, 1, 'state in a system module: exit 1' or diag "$out\n$err";
    for my $mode (qw(perlrun registry)) {
        like $out, qr/^$mode: different from plain CGI on a warm worker \(run 2\): runs 2 and 3 of 3 differ$/m,
            "$mode: the difference shows on a warm worker, run 2";
        like $out, qr/^--- plain CGI\n\+\+\+ $mode, run 2\n\@\@ -1,3 \+1,3 \@\@\n Content-Type: text\/plain\n \n-runs in this process: 1\n\+runs in this process: 2$/m,
            "$mode: the diff of run 2";
    }
    like $out, qr/^fork: identical \(3 runs on one worker, warm from run 2 on\)$/m, 'fork: identical';
    like $out, qr/^different\n\z/m, 'last line: different';
    ($out, $err, $rc) = compare('--repeat', '2', $fixture);
    is $rc, 1, '--repeat 2 is enough to see it' or diag "$out\n$err";
    like $out, qr/^perlrun: different from plain CGI on a warm worker \(run 2\): run 2 of 2 differs$/m, 'run 2 of 2';
    nothing_left('system module state');
}

# --- request shape: --data, --param, --env, isindex, cwd -------------------------
{
    my $body = "$site/../compare-body.$$";
    spew($body, "a=1&b=%20two");
    my ($out, $err, $rc) = compare('--data', $body, "$site/post.pl");
    is $rc, 0, '--data: identical' or diag "$out\n$err";
    like $out, qr/^compare: POST \Q$site\E\/post\.pl$/m, '--data makes a POST';
    like $out, qr/^persistent: one worker, warm-up \Q$site\E\/post\.pl,/m, 'a GET of the script warms up';

    ($out, $err, $rc) = compare('-v', '--data', $body, '--param', 'CONTENT_TYPE=text/x-test', "$site/post.pl");
    is $rc, 0, '--param overrides CONTENT_TYPE: identical' or diag "$out\n$err";
    unlink $body;

    ($out, $err, $rc) = compare('--param', 'HTTP_X_PROBE=yes', '--env', 'SITE_NAME=demo', "$site/params.pl", 'one+two%21');
    is $rc, 0, '--param, --env, isindex query: identical' or diag "$out\n$err";
}

# The comparison itself can fail: --env only on the daemon side is not
# possible, but a warm-up page that changes what the request sees is.
{
    my ($out, $err, $rc) = compare('--mode', 'registry', '--warm-up', "$site/state.pl", "$site/state.pl");
    is $rc, 1, 'a warm-up of the same script: run 1 already differs in registry' or diag "$out\n$err";
    like $out, qr/^registry: different from plain CGI on a warm worker \(run 1\): runs 1, 2 and 3 of 3 differ$/m,
        'every run differs, the first on a worker the warm-up page warmed';
}

# --- volatile output ------------------------------------------------------------
{
    my ($out, $err, $rc) = compare('-v', "$site/pid.pl");
    is $rc, 1, 'a pid in the page: exit 1' or diag "$out\n$err";
    nothing_left('pid.pl', $out);
    like $out, qr/^note: two plain CGI runs of the script differ from each other/m, 'says plain CGI varies too';
    like $out, qr/^\(.*differs only in lines that differ between two plain CGI runs too\)$/m,
        'says the difference is only there';
    ($out, $err, $rc) = compare('--mask', 'pid=\d+', "$site/pid.pl");
    is $rc, 0, '--mask: identical' or diag "$out\n$err";
    ($out, $err, $rc) = compare('--mask', '(', "$site/pid.pl");
    is $rc, 2, 'a bad --mask: exit 2';
    like $err, qr/^fcgi-spawn compare: --mask "\(": /, 'names the mask';
}

# A script that prints nothing: both sides answer 500.
{
    my ($out, $err, $rc) = compare('--mode', 'all', "$site/nothing.pl");
    is $rc, 0, 'no output on both sides: identical' or diag "$out\n$err";
}

# --- errors: exit 2, nothing started ------------------------------------------------
{
    my ($out, $err, $rc) = compare("$site/missing.pl");
    is $rc, 2, 'missing script: exit 2';
    like $err, qr/^fcgi-spawn compare: \Q$site\E\/missing\.pl: No such file or directory/, 'says which file';
    is $out, '', 'prints nothing on stdout';

    ($out, $err, $rc) = compare("$site/notes.txt");
    is $rc, 2, 'forbidden extension: exit 2';
    like $err, qr/would refuse .*notes\.txt with 403: .*allowed extension/, 'says the daemon would answer 403';

    ($out, $err, $rc) = compare('--root', "$FindBin::Bin/../examples", "$site/hello.pl");
    is $rc, 2, 'outside --root: exit 2';
    like $err, qr/outside the allowed roots/, 'says it is outside the roots';

    ($out, $err, $rc) = compare('--param', 'NOVALUE', "$site/hello.pl");
    is $rc, 2, 'bad --param: exit 2';
    like $err, qr/--param "NOVALUE" must be NAME=VALUE/, 'names the param';

    ($out, $err, $rc) = compare('--preload', 'No::Such::Module', "$site/hello.pl");
    is $rc, 2, 'a daemon that does not start: exit 2';
    like $err, qr/fcgi-spawn run did not start .*its log:.*No\/Such\/Module/s, 'shows its log';
    nothing_left('failed start');
}

# --- a hang on the persistent side: --timeout -------------------------------------
{
    my $t0 = time;
    my ($out, $err, $rc) = compare('--timeout', '2', "$site/slow.pl");
    is $rc, 1, 'persistent run past --timeout: exit 1' or diag "$out\n$err";
    like $out, qr/^\+\[no response within 2 s\]$/m, 'the diff says no response';
    like $out, qr/^perlrun: different from plain CGI on a fresh worker \(run 1\): run 1 of 3 differs \(runs 2 and 3 not sent: the worker was still busy with run 1\)$/m,
        'the runs after it are not sent';
    cmp_ok time - $t0, '<', 40, 'and compare does not wait for the script';
    nothing_left('timeout');
}

# --- Ctrl-C: the daemon stopped, the temp dir removed ------------------------------
{
    my $out = "$tmp/../compare-int.out.$$";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $ENV{TMPDIR} = $tmp;
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec $bin, 'compare', "$site/slow.pl" or POSIX::_exit(127);
    }
    # The daemon is up and the request in flight once its worker logged
    # nothing yet but the daemon said ready: wait for the log, then a bit.
    my $log;
    ok wait_for(sub { ($log) = glob "$tmp/fcgi-spawn-compare-*/perlrun.log"; $log && slurp($log) =~ / ready: / }, 30),
        'compare started its daemon';
    my ($daemon) = logged_pids(slurp($log));
    my @pids = ($daemon, children_of($daemon));
    sleep 0.5;
    kill 'INT', $pid;
    my $deadline = time + 30;
    sleep 0.05 while waitpid($pid, WNOHANG) == 0 && time < $deadline;
    is $? >> 8, 130, 'INT: exit status 130';
    like slurp($out), qr/SIGINT: stopped/, 'says it stopped';
    is scalar(@pids), 2, "daemon and worker pids (@pids)";
    ok wait_for(sub { !grep { kill 0, $_ } @pids }, 5), 'the daemon and its worker are gone';
    nothing_left('INT');
    unlink $out;
}

# Hash order is not a difference: the same lines in another order.
{
    my ($out, $err, $rc) = compare('--root', $site, '--mode', 'all', "$site/hash-order.pl");
    is $rc, 0, 'rows in hash order: identical' or diag "$out\n$err";
    like $out, qr/the same lines as plain CGI in another order \(Perl's hash order/, '... saying why';
    unlike $out, qr/volatile/, '... not called volatile';
}

# With user = "www-data", as root: both sides run the script as that user,
# as the daemon would. A script only root may read is not "identical"; a
# script that leaves a file behind leaves it as www-data, on both sides.
SKIP: {
    skip 'needs root to run scripts as another user', 6 if $> != 0;
    my $as = tempdir('fcgi-spawn-compare-user-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $as;
    mkdir "$as/marks";
    chmod 0777, "$as/marks";
    spew("$as/who.pl", <<"PL");
#!/usr/bin/perl
open my \$f, '>', "$as/marks/ran-\$\$-" . int(rand 1e9) or die "cannot write: \$!";
print "Content-Type: text/plain\\r\\n\\r\\nran\\n";
PL
    spew("$as/root-only.pl", qq{#!/usr/bin/perl\nprint "Content-Type: text/plain\\r\\n\\r\\nsecret\\n";\n}, 0700);
    my $conf = spew("$as/site.toml", qq{root = ["$as"]\nuser = "www-data"\n});
    my $www = getpwnam 'www-data';
    my ($out, $err, $rc) = compare('--config', $conf, "$as/who.pl");
    is $rc, 0, 'who.pl as www-data: identical' or diag "$out$err";
    like $out, qr/plain CGI: .* as user www-data \(the daemon's too\)/, 'the header says as whom';
    my @marks = glob "$as/marks/ran-*";
    is scalar(@marks), 5, 'two plain CGI runs and three on the worker left their file';
    is scalar(grep { (stat $_)[4] == $www } @marks), 5, '... every one as www-data';
    ($out, $err, $rc) = compare('--config', $conf, "$as/root-only.pl");
    is $rc, 1, 'a script only root may read: different, not identical';
    # Started as another user than the configured one: refused, with why.
    my $pid = fork // die;
    if (!$pid) {
        $ENV{TMPDIR} = $tmp;
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$as/refused.err" or POSIX::_exit(126);
        POSIX::setgid(scalar getgrnam 'nogroup');
        POSIX::setuid(scalar getpwnam 'nobody');
        exec $bin, 'compare', '--config', $conf, "$as/who.pl" or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    ok $? >> 8 == 2 && slurp("$as/refused.err") =~ /runs scripts as user "www-data": start compare as root/,
        'as nobody: refused (exit 2), saying why' or diag slurp("$as/refused.err");
}

done_testing;
