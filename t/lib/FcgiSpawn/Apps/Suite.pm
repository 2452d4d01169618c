package FcgiSpawn::Apps::Suite;

# Real applications (gitweb, awstats, cvsweb, dwww, munin's HTML and graph
# CGIs, BackupPC's admin interface, from their Debian packages) and an
# in-house application, each request served on one warm worker per
# isolation mode and compared byte for byte with the same request run as a
# plain CGI process (same environment, stdin, cwd and user). Volatile parts
# are masked per request by the application fixture, which says why. An
# application that refuses root (munin) names its `user`: as root, its
# daemon runs with --user and its plain-CGI side as that user.
#
# Two rounds per mode: the fixture's sources in their order (the worker
# warms up), then a seeded interleaving of all of them (ordered sources, such
# as a logged-in user's session, keep their order). FCGI_SPAWN_SEED=n
# replays an interleaving; FCGI_SPAWN_APPS=Gitweb,Dwww picks applications;
# FCGI_SPAWN_APPS_MODES="perlrun registry fork" picks modes;
# FCGI_SPAWN_APPS_KEEP=dir saves both sides' raw responses there.
#
# After both rounds the worker must hold no file or directory it did not
# hold when it started (a CGI process's exit closes them), but for DATA
# handles and what the fixture's `kept_open` pattern names, with its reason.
#
# Self-contained on purpose (FcgiSpawn::Test only): the shared differential
# harness (Test::FCGI::Spawn, FcgiSpawn::Sequence) consumes the same
# fixtures and can take this suite's place.
#
# The suite is split over two test files that run side by side:
# t/49-apps.t runs @FIRST_HALF, t/54-apps-more.t every other application
# (a new fixture lands there by itself).
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use FcgiSpawn::Test;
use FcgiSpawn::Apps::Fixture;

our @FIRST_HALF = qw(Gitweb Dwww Munin Backuppc);

my @modes = split ' ', ($ENV{FCGI_SPAWN_APPS_MODES} || 'perlrun registry fork');
my %only  = map { lc($_) => 1 } split /[,\s]+/, ($ENV{FCGI_SPAWN_APPS} || '');
my $seed  = defined $ENV{FCGI_SPAWN_SEED} ? $ENV{FCGI_SPAWN_SEED} : int(time) % 100000;
diag "interleaving seed $seed (FCGI_SPAWN_SEED=$seed replays it)";

# The variables `fcgi-spawn run` passes from its own environment by default
# (--pass-env); the oracle gets the same ones.
my @PASS_ENV = qw(PATH LANG LC_ALL LC_CTYPE TZ TMPDIR PERL5LIB);

my %ORACLE;    # request (by reference) => [stdout, stderr] of its plain-CGI run
my $top = tempdir('fcgi-spawn-apps-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# As root, an application's `user` must reach its fixture below $top (only
# by name: nothing here is listable by others).
chmod 0711, $top or die "chmod $top: $!" if $> == 0;

# Runs the named applications (FCGI_SPAWN_APPS narrows them), each in
# every mode, then ends the test plan.
sub run_apps {
    my (@names) = @_;
    my @picked = grep { !%only || $only{ lc $_ } } @names;
    plan skip_all => "FCGI_SPAWN_APPS picks none of @names" unless @picked;
    for my $name (@picked) {
        my $module = "FcgiSpawn::Apps::$name";
        eval "require $module; 1" or die $@;
        my $t0 = time;
        my $app = $module->can('setup')->("$top/$name");
        note sprintf '%s: fixture built in %.1f s', $name, time - $t0;
        if ($app->{skip}) {
            SKIP: { skip "$name: $app->{skip}", 1 }
            next;
        }
        # Cached plain-CGI answers are keyed by request reference: never
        # across applications, whose freed requests could reuse an address.
        %ORACLE = ();
        for my $mode (@modes) {
            subtest "$app->{name} in $mode" => sub { run_app($app, $mode) };
        }
    }
    done_testing;
    return;
}

sub run_app {
    my ($app, $mode) = @_;
    $app->{reset}->() if $app->{reset};
    my @args = map { ('--env', "$_=$app->{env}{$_}") } sort keys %{ $app->{env} || {} };
    push @args, @{ $app->{args} || [] };
    push @args, '--user', $app->{user} if $app->{user} && $> == 0;
    # registry and fork compile the application in the master, as a site
    # with a big application runs them (README, "Precompiling scripts").
    push @args, map { ('--precompile', "$_/**") } @{ $app->{roots} } if $mode ne 'perlrun';
    my $d = eval {
        start_daemon(workers => 1, isolation => $mode, root => $app->{roots},
            preload => $app->{preload} || [], args => \@args, timeout => 20);
    };
    if (!$d) {
        my $err = $@;
        plan skip_all => "isolation $mode not available in this build" if $err =~ /not (?:implemented|available)|invalid value/i;
        fail "daemon for $app->{name} in $mode started";
        diag $err;
        return;
    }
    if ($mode ne 'perlrun') {
        my ($n) = $d->log_text =~ /precompiled (\d+) script\(s\)/;
        ok $n, "$app->{name} ($mode): its scripts compiled in the master (" . ($n // 0) . ')'
            or diag join "\n", grep { /precompile/ } $d->log_lines;
    }
    my %state = (mode => $mode, app => $app, daemon => $d, prev => '(none: first request on this worker)');
    my @sources = @{ $app->{sources} };
    my ($worker) = worker_pids($d);
    my $files_at_start = open_files($worker);

    # Round 1: each source in its order.
    for my $src (@sources) {
        run_request(\%state, $_, 1) for @{ $src->{requests} };
    }
    # Round 2: a seeded interleaving of every source.
    run_request(\%state, $_, 2) for interleave($seed, @sources);

    # A process's exit would have closed what the pages opened (but for
    # what the app declares a module of the worker's keeps, kept_open).
    my ($now) = worker_pids($d);
    if (defined $now && defined $worker && $now == $worker) {
        my @left = grep { !$app->{kept_open} || !/$app->{kept_open}/ } files_left_open($worker, $files_at_start);
        is "@left", '', "$app->{name} ($mode): the worker holds no file or directory a page opened";
    }
    my @crashes = grep { /killed by SIG|panic:|SIGSEGV|SIGBUS/ } $d->log_lines;
    ok !@crashes, "$app->{name} ($mode): no worker crash or perl panic"
        or diag join "\n", @crashes[0 .. ($#crashes < 9 ? $#crashes : 9)];
    $d->stop;
}

# Ordered sources keep their order, unordered ones are shuffled; the merge
# picks the next source at random, weighted by what is left in it.
sub interleave {
    my ($seed, @sources) = @_;
    my $rand = rng($seed);
    my @queues = map {
        my @r = @{ $_->{requests} };
        if (!$_->{ordered}) {
            for (my $i = $#r; $i > 0; $i--) {
                my $j = int($rand->() * ($i + 1));
                @r[$i, $j] = @r[$j, $i];
            }
        }
        \@r;
    } @sources;
    my @out;
    while (my @left = grep { @$_ } @queues) {
        my $total = 0;
        $total += @$_ for @left;
        my $pick = int($rand->() * $total);
        for my $q (@left) {
            if ($pick < @$q) { push @out, shift @$q; last }
            $pick -= @$q;
        }
    }
    return @out;
}

# A small LCG, so the interleaving does not depend on perl's rand().
sub rng {
    my ($s) = @_;
    $s = ($s * 2654435761 + 1) % 4294967296;
    return sub {
        $s = ($s * 1103515245 + 12345) % 2147483648;
        return $s / 2147483648;
    };
}

# The complete CGI parameter set of a request: the shipped module's (the
# same for both sides but for side_params), plus the side's cookie jar
# unless the request sets HTTP_COOKIE itself.
sub cgi_params {
    my ($state, $req, $side) = @_;
    my $p = Test::FCGI::Spawn::cgi_params($req, $side);
    my $own_cookie = exists(($req->{params} || {})->{HTTP_COOKIE})
        || exists((($req->{side_params} || {})->{$side} || {})->{HTTP_COOKIE});
    if ((my $jar = $req->{jar}) && !$own_cookie) {
        my $c = $state->{jars}{$side}{$jar} || {};
        $p->{HTTP_COOKIE} = join '; ', map { "$_=$c->{$_}" } sort keys %$c if %$c;
    }
    return $p;
}

sub run_request {
    my ($state, $req, $round) = @_;
    my $d = $state->{daemon};
    my $label = "$state->{app}{name} ($state->{mode}, round $round): $req->{name}";

    my $pp = cgi_params($state, $req, 'persistent');
    my $log_at = length $d->log_text;
    my ($pout, $perr, $prc) = fcgi_request($d, $req->{script},
        method => $pp->{REQUEST_METHOD},
        query  => $pp->{QUERY_STRING},
        params => [ map { ($_ => $pp->{$_}) } sort keys %$pp ],
        (defined $req->{body} ? (data => $req->{body}) : ()),
        timeout => 60);
    my $plog = substr $d->log_text, $log_at;

    my $op = cgi_params($state, $req, 'cgi');
    # Applications without per-side data (no reset hook) give the same
    # plain-CGI answer to the same request every time (their volatile parts
    # are masked): it is computed once and reused in round 2 and later modes.
    my $cached = $state->{app}{reset} ? undef : $ORACLE{$req};
    my ($oout, $oerr) = $cached ? @$cached : run_cgi($req, $op, $state->{app});
    $ORACLE{$req} = [$oout, $oerr] unless $state->{app}{reset};

    if (my $keep = $ENV{FCGI_SPAWN_APPS_KEEP}) {
        my $n = sprintf '%s-%s-r%d-%03d', $state->{app}{name}, $state->{mode}, $round, ++$state->{nkept};
        spew("$keep/$n.cgi", $oout);
        spew("$keep/$n.persistent", $pout);
        spew("$keep/$n.request", "$req->{name}\n" . join('', map { "$_=$pp->{$_}\n" } sort keys %$pp));
    }
    update_jar($state, $req, 'persistent', $pout);
    update_jar($state, $req, 'cgi', $oout);

    my $ok = $oout =~ /\A(?:[\w-]+:[^\n]*\r?\n)+\r?\n/;
    if (!$ok) {
        fail "$label: the oracle gave a CGI response (fixture sane)";
        diag "oracle stdout:\n" . excerpt($oout) . "\noracle stderr:\n" . excerpt($oerr);
        $state->{prev} = $req->{name};
        return;
    }
    my $pn = normalize($state, $req, 'persistent', $pout);
    my $on = normalize($state, $req, 'cgi', $oout);
    if (!ok $pn eq $on, "$label: same bytes as plain CGI") {
        # The first few differences of an application in a mode in full,
        # then only where each one starts.
        if (++$state->{failures} > 6) {
            diag 'first difference: ' . first_difference($on, $pn);
            $state->{prev} = $req->{name};
            return;
        }
        diag "previous request on this worker: $state->{prev}";
        diag "request: " . join ' ', map { "$_=$pp->{$_}" } grep { !/^(?:GATEWAY_INTERFACE|SERVER_\w+|REMOTE_ADDR)$/ } sort keys %$pp;
        diag udiff($on, $pn);
        diag "daemon log during the request:\n" . excerpt($plog) if length $plog;
        diag "fcgi-spawn request stderr/exit $prc:\n" . excerpt($perr) if length $perr || $prc;
        diag "oracle stderr:\n" . excerpt($oerr) if length $oerr;
    }
    $state->{prev} = $req->{name};
}

# The response as compared: gzip bodies decompressed (when the request says
# gunzip), ids mapped to their order of appearance on that side, masks
# applied, lines sorted when the request says why.
sub normalize {
    my ($state, $req, $side, $raw) = @_;
    my $text = $raw;
    if ($req->{gunzip}) {
        my ($head, $sep, $body) = $text =~ /\A(.*?)(\r?\n\r?\n)(.*)\z/s;
        if (defined $body && substr($body, 0, 2) eq "\x1f\x8b") {
            my $plain;
            if (gunzip(\$body => \$plain, MultiStream => 1, Transparent => 0, Strict => 1)) {
                $body = "<gunzipped>\n$plain";
            }
            else {
                $body = sprintf "<gzip stream broken: %s; %d bytes>\n", $GunzipError, length $body;
            }
        }
        $text = $head . $sep . $body if defined $body;
    }
    for my $re (@{ $req->{map_ids} || [] }) {
        my $ids = $state->{ids}{$side} ||= {};
        $text =~ s{$re}{
            my $id = defined $1 ? $1 : $&;
            my $n = $ids->{$id} ||= ++$state->{nids}{$side};
            defined $1 ? substr($&, 0, $-[1] - $-[0]) . "<id $n>" . substr($&, $+[1] - $-[0]) : "<id $n>";
        }ge;
    }
    for my $re (@{ $req->{mask} || [] }) {
        $text =~ s/$re/<masked>/g;
    }
    if ($req->{sort_lines}) {
        my $only = $req->{sort_lines_match};
        if (!$only) {
            $text = join "\n", sort split /\n/, $text;
        }
        else {
            # Only each run of consecutive lines matching the pattern (the
            # rows of one table) is sorted in place.
            my (@out, @run);
            for my $line (split(/\n/, $text, -1), undef) {
                if (defined $line && $line =~ $only) { push @run, $line; next }
                push @out, sort @run;
                @run = ();
                push @out, $line if defined $line;
            }
            $text = join "\n", @out;
        }
    }
    return $text;
}

# Cookies the response sets go into that side's jar for the request's jar name.
sub update_jar {
    my ($state, $req, $side, $raw) = @_;
    my $jar = $req->{jar} or return;
    my ($head) = split /\r?\n\r?\n/, $raw, 2;
    return unless defined $head;
    for my $line (split /\r?\n/, $head) {
        next unless $line =~ /^Set-Cookie:\s*([^=;\s]+)=([^;]*)(.*)$/i;
        my ($k, $v, $attrs) = ($1, $2, $3);
        if ($v eq '' || $attrs =~ /max-age=0\b/i || $attrs =~ /expires=\w+,\s*\d+-\w+-(19\d\d|200\d)/i) {
            delete $state->{jars}{$side}{$jar}{$k};
        }
        else {
            $state->{jars}{$side}{$jar}{$k} = $v;
        }
    }
}

# Plain CGI: the script run by the kernel (shebang switches apply) or by
# perl when not executable, cwd = its directory, %ENV = the daemon's base
# environment + the application's env + the request's params, as the
# application's user when it has one and the test runs as root.
sub run_cgi {
    my ($req, $params, $app) = @_;
    my $dir = tempdir('cgi-XXXXXX', DIR => $top, CLEANUP => 1);
    spew("$dir/in", defined $req->{body} ? $req->{body} : '');
    my %env = ((map { defined $ENV{$_} ? ($_ => $ENV{$_}) : () } @PASS_ENV), %{ $app->{env} || {} }, %$params);
    my $script = $req->{script};
    my @argv = -x $script ? ($script) : ('perl', $script);
    my $q = $params->{QUERY_STRING};
    if (length $q && $q !~ /=/) {
        push @argv, map { my $a = $_; $a =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $a } split /\+/, $q;
    }
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        %ENV = %env;
        chdir dirname($script) or POSIX::_exit(125);
        open STDIN, '<', "$dir/in" or POSIX::_exit(126);
        open STDOUT, '>', "$dir/out" or POSIX::_exit(126);
        open STDERR, '>', "$dir/err" or POSIX::_exit(126);
        eval { FcgiSpawn::Apps::Fixture::drop_privileges($app->{user}); 1 } or do { print STDERR $@; POSIX::_exit(124) };
        exec { $argv[0] } @argv or POSIX::_exit(127);
    }
    my $deadline = time + 60;
    while (waitpid($pid, WNOHANG) != $pid) {
        if (time > $deadline) { kill 'KILL', $pid; waitpid $pid, 0; last }
        sleep 0.01;
    }
    return (slurp("$dir/out"), slurp("$dir/err"));
}

sub first_difference {
    my ($want, $got) = @_;
    my @w = split /\n/, $want, -1;
    my @g = split /\n/, $got, -1;
    for my $i (0 .. ($#w > $#g ? $#w : $#g)) {
        my ($a, $b) = map { defined $_ ? printable($_) : '(end)' } $w[$i], $g[$i];
        next if $a eq $b;
        return "line " . ($i + 1) . "\n  cgi:        " . substr($a, 0, 200) . "\n  persistent: " . substr($b, 0, 200);
    }
    return '(none)';
}

sub printable {
    my ($s) = @_;
    $s =~ s/([^\x20-\x7e\n\t])/sprintf '\\x%02x', ord $1/ge;
    return $s;
}

sub excerpt {
    my ($s) = @_;
    $s = printable($s);
    my @l = split /\n/, $s;
    return join "\n", @l > 40 ? (@l[0 .. 39], '... (' . (@l - 40) . ' more lines)') : @l;
}

# A unified diff (expected = plain CGI, got = persistent), at most 60 lines.
sub udiff {
    my ($want, $got) = @_;
    my $dir = tempdir('diff-XXXXXX', DIR => $top, CLEANUP => 1);
    spew("$dir/cgi", printable($want) . "\n");
    spew("$dir/persistent", printable($got) . "\n");
    open my $fh, '-|', 'diff', '-u', "$dir/cgi", "$dir/persistent" or return "(diff: $!)";
    my @l = <$fh>;
    close $fh;
    chomp @l;
    return join "\n", @l > 60 ? (@l[0 .. 59], '... (' . (@l - 60) . ' more diff lines)') : @l;
}

1;
