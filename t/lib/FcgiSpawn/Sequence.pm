package FcgiSpawn::Sequence;

=head1 NAME

FcgiSpawn::Sequence - seeded-random request sequences on one warm worker, each response compared with plain CGI

=head1 SYNOPSIS

    use FcgiSpawn::Sequence;
    my $cat = FcgiSpawn::Sequence::catalogue($tmpdir);   # scripts, poisoners, checkers, apps
    my $seq = FcgiSpawn::Sequence->new(catalogue => $cat);   # seed from FCGI_SPAWN_SEED or random
    $seq->run(mode => 'perlrun', via => 'fastcgi', exceptions => \@exceptions);

=head1 DESCRIPTION

The differential suite of issue 8. Requests come from I<sources>: every
script of t/scripts and examples/ (with the queries and bodies that make
sense for it; the scripts meant for special tests are skipped, each with its
reason, in C<%SKIP>), the poisoners (t/scripts/poison: scripts that change
interpreter state and assume the process dies afterwards), the checkers
(t/scripts/check: scripts that print that state, deterministically) and the
applications of F<t/lib/FcgiSpawn/Apps/*.pm> (whatever exists). An ordered
source (a user session) is replayed in order, with a cookie jar per side
(a request's own C<jar> wins). Applications' C<args> (more daemon flags) and
C<reset> (puts their per-side data back; called at every daemon start) are
honoured.

A plan is drawn from the seed (printed; C<FCGI_SPAWN_SEED=n> replays it;
C<FCGI_SPAWN_LONG=1> draws a long one, C<FCGI_SPAWN_STEPS=n> any length)
and run on one warm worker: each request goes to the daemon (raw FastCGI or
through nginx) and to the plain-CGI oracle of L<Test::FCGI::Spawn>, and the
bytes are compared. A difference fails naming the seed, the step, the
request and the requests the worker served before it; a worker crash
(C<killed by SIG> in the log) fails too, and so does a file or directory
the worker holds open after a request that it did not hold when it
started (a process's exit would have closed it; the DATA handle of a
compiled script with C<__END__> or C<__DATA__> is the script's), and, in
raw FastCGI runs where every request has a connection of its own, a
socket more than it started with. Such a
leak once showed only as the oracle of a later request timing out
(BackupPC's server stand-in, busy with the worker's forgotten
connection). After a failure the daemon is
restarted, so one run shows every independent difference (up to
C<FCGI_SPAWN_MAX_FAILURES>, default 8 per mode).

The harness checks itself too: an oracle response must be a real page
(header block) unless the request says C<< expect => 'nothing' >> (a script
that prints nothing, which a CGI server answers with a 500; apps' requests
may say so too), and C<sanity> runs every checker on fresh workers, where it
must equal the oracle.

=cut

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Find ();
use File::Spec;
use Test::More ();
use Test::FCGI::Spawn ();
use Time::HiRes ();

our $TODO;    # Test::More reads the caller package's $TODO

my $TOP = abs_path(File::Spec->catdir(dirname(__FILE__), '..', '..', '..'));

sub top { $TOP }

# Scripts of t/scripts and examples/ that are not requested, and why.
our %SKIP = (
    't/scripts/crash.pl'            => 'kills its own worker on purpose (t/50-worker-crash.t)',
    't/scripts/sleep.pl'            => 'sleeps 2 s, a timing fixture (t/71, t/90)',
    't/scripts/slow-writer.pl'      => 'writes for 10 s, an abort fixture (t/70, t/32)',
    't/scripts/stream.pl'           => 'prints timestamps to show streaming (t/32-streaming.t)',
    't/scripts/timeout-sleeper.pl'  => 'sleeps 20 s, a request-timeout fixture (t/91)',
    't/scripts/timeout-stubborn.pl' => 'ignores stop attempts for 30 s (t/91)',
    't/scripts/cpu-loop.pl'         => 'spins 30 s, a stop fixture (t/93, t/94, t/95)',
    't/scripts/sleep-timed.pl'      => 'prints how long it slept, a stop fixture (t/93)',
    't/scripts/sig-term.pl'         => 'takes its time under its own TERM handler, a stop fixture (t/93)',
    't/scripts/stdin-kind.pl'       => 'prints the name of the pipe or file on its fd 0, which differs by nature (t/06)',
    't/scripts/xinc.pl'             => 'uses FCGI::Spawn, which exists only inside the daemon ($FCGI::Spawn::PERSISTENT differs by design; t/46)',
    't/scripts/iso-check.pl'        => 'prints the @INC count and STDOUT\'s raw PerlIO layers, which differ on a clean worker '
        . '(the @INC hook the daemon loads scripts through, its fcgi_spawn_stdout layer); check/inc.pl and '
        . 'check/handles.pl print the same state comparably (t/40-isolation.t)',
    't/scripts/grow.pl'             => 'leaks 80 MiB through a reference cycle, a max_rss fixture (t/76)',
    't/scripts/slow.pl'             => 'sleeps inside nested subs, a slowlog fixture (t/76)',
    't/scripts/legacy/common.pl'    => 'a library required by legacy/page.pl, not a page',
    't/scripts/legacy/settings.pl'  => 'a configuration file done by legacy/page.pl, not a page',
);

my $MULTIPART = join "\r\n",
    '--XyZzY', 'Content-Disposition: form-data; name="note"', '', 'a note',
    '--XyZzY', 'Content-Disposition: form-data; name="file"; filename="a.txt"', 'Content-Type: text/plain', '',
    "uploaded\r\ncontent\r\n", '--XyZzY--', '';

# Requests per script (relative to the top); a script not listed gets one
# GET without a query. expect: 'page' (the oracle must print a header
# block; the default) or 'nothing' (the script prints nothing: a CGI server
# answers 500). Masks cover what is volatile by nature (pids, random
# numbers, temp file names, the current time) and nothing else.
my $PID_LINE = qr/^\d+$/m;
our %REQUESTS = (
    't/scripts/pid.pl'      => [ { mask => [$PID_LINE] } ],
    't/scripts/reload-env.pl' => [ { mask => [qr/pid=\K\d+/] } ],
    't/scripts/rand.pl'     => [ { mask => [qr/pid=\d+ rand=\d+/] } ],
    't/scripts/fork.pl'     => [ map { { query => "how=$_", mask => [qr/(?:child|parent) \K\d+/] } } qw(exit die) ],
    't/scripts/exit.pl'     => [ { query => 'code=0' }, { query => 'code=2' } ],
    't/scripts/hello.pl'    => [ {}, { query => 'name=a%20%26%20b' } ],
    't/scripts/form.pl'     => [ { query => 'a=1&b=2&a=3' }, { body => 'x=1&y=%3Cz%3E&x=2' } ],
    # CGI.pm adds a Date header (the current time) to a response with a cookie.
    't/scripts/cookie.pl'   => [ map { { %$_, mask => [qr/^Date: [^\r\n]*/m] } } {}, { params => { HTTP_COOKIE => 'flavour=chocolate' } } ],
    't/scripts/env.pl'      => [ { query => 'a=1' }, { query => 'isindex+words' } ],
    't/scripts/post.pl'     => [ map { { query => "mode=$_", body => "body for $_\n" x 20 } } qw(read pieces sysread readline) ],
    't/scripts/stdin-peek.pl' => [ { body => 'abcdefghij' } ],
    't/scripts/fds-stdin.pl'  => [ { body => "line one\nline two\n" } ],
    't/scripts/upload.pl'   => [ { body => $MULTIPART, content_type => 'multipart/form-data; boundary=XyZzY',
        mask => [qr/^tmpfile=.*$/m] } ],
    't/scripts/large.pl'    => [ { query => 'how=print' } ],
    't/scripts/die.pl'                   => [ { expect => 'nothing' } ],
    't/scripts/compile-error.pl'         => [ { expect => 'nothing' } ],
    't/scripts/strict-error.pl'          => [ { expect => 'nothing' } ],
    't/scripts/exit-before-output.pl'    => [ { expect => 'nothing' } ],
    'examples/counter.pl'   => [ { mask => [qr/process \d+/] } ],
    'examples/env.pl'       => [ { mask => [qr/pid \d+/] } ],
    'examples/index.cgi'    => [ { mask => [qr/process \d+/] } ],
    'examples/form.pl'      => [ {}, { body => 'name=Ann&colour=blue&tags=perl&tags=cgi' } ],
    'examples/upload.pl'    => [ {}, { body => $MULTIPART, content_type => 'multipart/form-data; boundary=XyZzY' } ],
    't/scripts/poison/compile-strict.pl'         => [ { expect => 'nothing' } ],
    't/scripts/poison/compile-syntax.pl'         => [ { expect => 'nothing' } ],
    't/scripts/poison/compile-begin-die.pl'      => [ { expect => 'nothing' } ],
    't/scripts/poison/compile-missing-module.pl' => [ { expect => 'nothing' } ],
    't/scripts/poison/die-top.pl'                => [ { expect => 'nothing' } ],
    't/scripts/poison/die-in-sub.pl'             => [ { expect => 'nothing' } ],
    't/scripts/poison/stdout-close-first.pl'     => [ { expect => 'nothing' } ],
    't/scripts/poison/exit-code.pl'              => [ {}, { query => 'code=0' } ],
    't/scripts/poison/worker-sub-ways.pl'        => [ {}, map { { query => "how=$_" } } qw(glob_assign symbolic list_assign in_a_sub do_file package_stash) ],
    't/scripts/poison/layer-stdin-stderr.pl'     => [ { body => "a\r\nb\r\n" } ],
    't/scripts/poison/gzip-pipe-close.pl'        => [ { gunzip => 1, params => { HTTP_ACCEPT_ENCODING => 'gzip' } } ],
    't/scripts/poison/gzip-pipe-open.pl'         => [ { gunzip => 1, params => { HTTP_ACCEPT_ENCODING => 'gzip' } } ],
    't/scripts/poison/gzip-tie.pl'               => [ { gunzip => 1, params => { HTTP_ACCEPT_ENCODING => 'gzip' } } ],
    't/scripts/poison/cgi-fast-loop.pl'          => [ {}, { query => 'name=a%20b' } ],
    't/scripts/poison/fcgi-request-loop.pl'      => [ { query => 'x=1' } ],
    # Changes that keep the package's shape (put back by its image), then
    # ones that change it; t/57 tries each alone.
    't/scripts/poison/package-changes.pl'        => [ {},
        { query => 'do=scalar,array_push,array_elem,hash_swap,hash_elem,sub_redefine,slot_array,open_file,inner_scalar' },
        { query => 'do=array_sort,hash_add,sub_eval,slot_scalar,slot_hash,open_dir,inner_array,glob_undef' },
        { query => 'do=symbol_new,symbol_gone,constant_glob,inner_sub,sub_undef,glob_alias,inner_sub_undef' } ],
    't/scripts/check/stdin.pl'                   => [ {}, { body => "one\r\ntwo\r\n" } ],
    't/scripts/check/cgi.pl'                     => [ {}, { query => 'c=on&name=x' } ],
    # What goes at the exit goes in perl's order (global destruction's
    # under CGI), not the script's.
    't/scripts/check/destroy-at-exit.pl'         => [ { sort_lines => 1, sort_lines_match => qr/^destroyed: / } ],
);

sub _script_requests {
    my ($rel) = @_;
    my $path = "$TOP/$rel";
    my @specs = @{ $REQUESTS{$rel} || [ {} ] };
    my @out;
    for my $i (0 .. $#specs) {
        my %r = (%{ $specs[$i] }, script => $path);
        my $what = join ' ', grep { defined } ($r{body} ? 'POST' : ()), $r{query};
        $r{name} = $rel . (length $what ? " ($what)" : '');
        $r{expect} ||= 'page';
        push @out, \%r;
    }
    return @out;
}

sub _scripts_under {
    my ($dir, %o) = @_;
    my @found;
    File::Find::find({ no_chdir => 1, wanted => sub {
        if (-d $_ && $o{prune} && $o{prune}->($_)) { $File::Find::prune = 1; return }
        push @found, $_ if -f $_ && /\.(?:pl|cgi)\z/;
    } }, "$TOP/$dir");
    return map { substr $_, length($TOP) + 1 } sort @found;
}

# Every source: (\@sources, \%daemon_options, \@notes).
sub catalogue {
    my ($tmpdir) = @_;
    my @notes;
    my %is_sub = map { ("$TOP/t/scripts/$_" => 1) } qw(poison check);
    my $prune = sub { my $d = $_[0]; $is_sub{$d} || $d =~ m{/lib\z} };
    my @scripts = grep {
        my $why = $SKIP{$_};
        push @notes, "skipped $_: $why" if $why;
        !$why;
    } _scripts_under('t/scripts', prune => $prune), _scripts_under('examples');
    my @sources = (
        { name => 'scripts',    weight => 3, requests => [ map { _script_requests($_) } @scripts ] },
        { name => 'poisoners',  weight => 4, requests => [ map { _script_requests($_) }
            _scripts_under('t/scripts/poison', prune => sub { $_[0] =~ m{/lib\z} }) ] },
        { name => 'checkers',   weight => 4, requests => [ map { _script_requests($_) }
            _scripts_under('t/scripts/check', prune => sub { $_[0] =~ m{/lib\z} }) ] },
    );
    my %daemon = (roots => [ "$TOP/t/scripts", "$TOP/examples" ], preload => ['CGI'], env => {}, args => [],
        reset => []);
    for my $file (sort glob "$TOP/t/lib/FcgiSpawn/Apps/*.pm") {
        my ($name) = $file =~ m{/(\w+)\.pm\z} or next;
        my $setup = "FcgiSpawn::Apps::${name}::setup";
        my $app = eval {
            require "FcgiSpawn/Apps/$name.pm";
            no strict 'refs';
            return 'helper' unless defined &$setup;
            mkdir "$tmpdir/$name";
            $setup->("$tmpdir/$name");
        };
        if (defined $app && !ref $app && $app eq 'helper') {
            push @notes, "$file: no setup(), a helper module, not an app";
            next;
        }
        if (!$app) {
            push @notes, "app $name not used: setup failed: " . ($@ || 'no result');
            next;
        }
        if ($app->{skip}) {
            push @notes, "app $app->{name}: skipped: $app->{skip}";
            next;
        }
        # One daemon serves every app here, as one user: an app that must
        # run as its own user (it refuses root) is left to t/49-apps.t.
        if ($app->{user} && $> == 0) {
            push @notes, "app $app->{name}: skipped: as root it runs as user $app->{user} (t/49-apps.t runs it so)";
            next;
        }
        push @{ $daemon{roots} }, @{ $app->{roots} || [] };
        for my $k (sort keys %{ $app->{env} || {} }) {
            croak "app $app->{name}: env $k conflicts with another app's"
                if exists $daemon{env}{$k} && $daemon{env}{$k} ne $app->{env}{$k};
            $daemon{env}{$k} = $app->{env}{$k};
        }
        my %have = map { $_ => 1 } @{ $daemon{preload} };
        push @{ $daemon{preload} }, grep { !$have{$_}++ } @{ $app->{preload} || [] };
        # One daemon serves every app: their extra flags all apply.
        my $args = join "\0", @{ $daemon{args} };
        push @{ $daemon{args} }, @{ $app->{args} || [] } if index($args, join "\0", @{ $app->{args} || [] }) < 0;
        push @{ $daemon{reset} }, $app->{reset} if $app->{reset};
        # An app weighs as much as t/scripts in the draw, however many
        # sources it has.
        my @src = @{ $app->{sources} || [] };
        for my $src (@src) {
            push @sources, { %$src, name => "$app->{name}/$src->{name}", weight => $src->{weight} || 3 / @src,
                requests => [ map { +{ expect => 'page', %$_ } } @{ $src->{requests} } ] };
        }
        push @notes, "app $app->{name}: " . @{ $app->{sources} || [] } . ' sources';
    }
    return (\@sources, \%daemon, \@notes);
}

sub new {
    my ($class, %o) = @_;
    my $seed = defined $o{seed} ? $o{seed}
        : defined $ENV{FCGI_SPAWN_SEED} && length $ENV{FCGI_SPAWN_SEED} ? $ENV{FCGI_SPAWN_SEED}
        : int(rand 1_000_000_000);
    my $steps = $o{steps} || $ENV{FCGI_SPAWN_STEPS} || ($ENV{FCGI_SPAWN_LONG} ? 3000 : 80);
    my $self = bless { %o, seed => $seed, steps => $steps }, $class;
    $self->{plan} = $self->_plan;
    return $self;
}

# Every poisoner followed by every checker, in file order: a plan for the
# long run that misses no pair (2 steps per pair, a fresh worker for each
# poisoner).
sub pairs {
    my ($class, %o) = @_;
    my $self = bless { %o, seed => 'pairs', steps => 0 }, $class;
    my ($pi) = grep { $o{sources}[$_]{name} eq 'poisoners' } 0 .. $#{ $o{sources} };
    my ($ci) = grep { $o{sources}[$_]{name} eq 'checkers' } 0 .. $#{ $o{sources} };
    my @plan;
    for my $p (0 .. $#{ $o{sources}[$pi]{requests} }) {
        for my $c (0 .. $#{ $o{sources}[$ci]{requests} }) {
            # Each poisoner's block starts on a fresh worker, so what only
            # the first request of a worker does (the first use of DBI) is
            # tried for every poisoner.
            push @plan, [ $pi, $p, 0, $c == 0 ], [ $ci, $c, 0 ];
        }
    }
    $self->{plan} = \@plan;
    $self->{steps} = @plan;
    return $self;
}

sub seed  { $_[0]{seed} }
sub steps { $_[0]{steps} }

# The plan: [source index, request index, new session?, fresh worker?] per
# step, drawn from the seed alone (rand is reseeded here and nowhere else
# draws from the plan).
sub _plan {
    my ($self) = @_;
    my $sources = $self->{sources};
    srand $self->{seed};
    my $total = 0;
    $total += $_->{weight} for @$sources;
    my %next;
    my @plan;
    for (1 .. $self->{steps}) {
        my $pick = rand $total;
        my $si = 0;
        $pick -= $sources->[$si]{weight}, $si++ while $si < $#$sources && $pick >= $sources->[$si]{weight};
        my $src = $sources->[$si];
        my $n = @{ $src->{requests} } or next;
        if ($src->{ordered}) {
            my $ri = $next{$si} // 0;
            push @plan, [ $si, $ri, $ri == 0 ];
            $next{$si} = ($ri + 1) % $n;
        }
        else {
            push @plan, [ $si, int rand $n, 0 ];
        }
    }
    srand;
    return \@plan;
}

# The isolation modes a run covers: FCGI_SPAWN_MODES, or all three.
sub modes {
    return $ENV{FCGI_SPAWN_MODES} ? split(' ', $ENV{FCGI_SPAWN_MODES}) : qw(perlrun registry fork);
}

# A sub that starts the catalogue's daemon ($daemon from catalogue) in a
# mode, one worker, more flags after the mode (and FCGI_SPAWN_EXTRA_ARGS).
sub daemon_starter {
    my ($bin, $daemon) = @_;
    return sub {
        my ($mode, @args) = @_;
        return Test::FCGI::Spawn->start(
            binary    => $bin,
            roots     => $daemon->{roots},
            preload   => $daemon->{preload},
            env       => $daemon->{env},
            isolation => $mode,
            workers   => 1,
            timeout   => 20,    # per request: a response that never ends fails in 20 s, not 60
            # The plan warms the worker itself, and a seed must replay the
            # same requests: each step runs once.
            warm_runs => 1,
            args      => [ @args, @{ $daemon->{args} }, split ' ', $ENV{FCGI_SPAWN_EXTRA_ARGS} || '' ],
        );
    };
}

# Names of the params other than HTTP_* that requests set (what nginx must
# be told to pass).
sub cgi_param_names {
    my ($sources) = @_;
    my %n;
    for my $req (map { @{ $_->{requests} } } @$sources) {
        $n{$_}++ for grep { !/^HTTP_\w+\z/ } keys %{ $req->{params} || {} },
            map { keys %{ $_ || {} } } values %{ $req->{side_params} || {} };
    }
    return sort keys %n;
}

# Scripts without a .pl/.cgi name (nginx must be told they are scripts).
sub extensionless_scripts {
    my ($sources) = @_;
    my %s = map { $_->{script} => 1 } grep { $_->{script} !~ /\.(?:pl|cgi)\z/ } map { @{ $_->{requests} } } @$sources;
    return sort keys %s;
}

sub _describe {
    my ($req) = @_;
    return $req->{name} || $req->{script};
}

sub _exception_for {
    my ($exceptions, $mode, $req, $previous) = @_;
    for my $e (@{ $exceptions || [] }) {
        next if $e->{mode} && $e->{mode} ne $mode;
        next if $e->{script} && $req->{script} !~ $e->{script};
        next if $e->{after} && !grep { $_->{script} =~ $e->{after} } @$previous;
        return $e;
    }
    return undef;
}

# The harness checks its own oracle: a real page, or nothing when declared.
sub _oracle_sane {
    my ($req, $cgi) = @_;
    return "the plain CGI run failed: $cgi->{error}" if $cgi->{error};
    my $expect = $req->{expect} || 'page';
    if ($expect eq 'nothing') {
        return length $cgi->{raw} ? 'the plain CGI run printed something, the request says it prints nothing' : undef;
    }
    return defined $cgi->{head} && length $cgi->{head}
        ? undef : 'the plain CGI run printed no CGI header block (harness or script broken)';
}

=head2 run(%o)

C<mode> (isolation), C<start> (a sub returning a started
L<Test::FCGI::Spawn> for the mode), C<via> ('fastcgi', or 'http' through
the nginx the C<sender> sub returns for a site), C<exceptions>. Emits one
test per step.

=cut

sub run {
    my ($self, %o) = @_;
    my $mode = $o{mode};
    my $max_failures = $ENV{FCGI_SPAWN_MAX_FAILURES} || 8;
    my $sources = $self->{sources};
    my ($site, $sender);
    my $log_pos = 0;
    my $boot = sub {
        $sender->stop if $sender && $sender != $site;
        $sender = undef;
        $site->stop if $site;
        # Applications with per-side data start both sides equal again.
        $_->() for @{ $o{reset} || [] };
        $site = $o{start}->($mode);
        $log_pos = 0;
        $sender = $o{sender} ? $o{sender}->($site) : $site;
    };
    $boot->();
    my $log_since = sub {
        my $t = Test::FCGI::Spawn::slurp($site->log_file, $log_pos);
        $log_pos += length $t;
        return $t;
    };
    my @previous;    # requests the current worker served, oldest first
    my ($worker) = $site->worker_pids;
    # Files and directories the worker holds open: those it had when it
    # started, and any a request left (reported once each).
    my ($fds_at_start, %leak_reported);
    my $leaks = 0;
    # Without a web server every request comes on a connection of its own,
    # closed after it: the worker's sockets between requests are the ones
    # it started with, unless a request left one open (BackupPC's server
    # connection did).
    my $sockets_at_start;
    # What the (new) worker holds once started: it opens descriptors of its
    # own until then.
    my $take_baseline = sub {
        Test::FCGI::Spawn::worker_started($worker);
        $fds_at_start = Test::FCGI::Spawn::open_files($worker);
        $sockets_at_start = Test::FCGI::Spawn::socket_count($worker) if $o{via} ne 'http';
    };
    $take_baseline->();
    my $sockets_left = sub {
        return 0 unless defined $sockets_at_start;
        my $more;
        for my $try (1 .. 10) {
            $more = Test::FCGI::Spawn::socket_count($worker) - $sockets_at_start;
            last if $more <= 0;
            Time::HiRes::sleep(0.2) if $try < 10;
        }
        return $more;
    };
    my %session;
    my $failures = 0;
    my $step = 0;
    my $worker_from = 1;    # the step the current worker started at
    # Narrowing a failure down: FCGI_SPAWN_FROM_STEP=n starts a fresh
    # worker at step n and skips what came before; FCGI_SPAWN_SKIP_STEPS
    # (a comma list) leaves steps out.
    my $from = $ENV{FCGI_SPAWN_FROM_STEP} || 1;
    my %skip = map { $_ => 1 } split /,/, $ENV{FCGI_SPAWN_SKIP_STEPS} // '';
    for my $p (@{ $self->{plan} }) {
        $step++;
        next if $step < $from || $skip{$step};
        my ($si, $ri, $new_session, $fresh_worker) = @$p;
        if (($fresh_worker || $step == $from) && $step > 1) {
            $boot->();
            @previous = ();
            ($worker) = $site->worker_pids;
            $take_baseline->();
            $worker_from = $step;
        }
        my $src = $sources->[$si];
        my $req = $src->{requests}[$ri];
        if ($o{via} eq 'http' && !$sender->can_send($req)) {
            next;
        }
        # An ordered source is a session: its requests share a cookie jar
        # (per side), a new one each time the session starts over.
        $session{$si}++ if $new_session || !$session{$si};
        my $sent = $src->{ordered} && !$req->{jar} ? { %$req, jar => "$src->{name} #$session{$si}" } : $req;
        my $res = $sender->compare($sent);
        my $label = "seed $self->{seed} $mode step $step: " . _describe($req);
        my $problem = _oracle_sane($req, $res->{cgi});
        # Crashes logged since the last step, also between requests (an
        # alarm a script left, a child it left behind).
        my @crash = grep { /killed by SIG/ } split /\n/, $log_since->();
        my ($now) = $site->worker_pids;
        my $history = sub {
            my @last = @previous > 10 ? @previous[-10 .. -1] : @previous;
            my $s = ($self->{seed} eq 'pairs'
                ? "  plan: every poisoner then every checker (replay: FCGI_SPAWN_PAIRS=1)\n"
                : "  seed: $self->{seed} (replay: FCGI_SPAWN_SEED=$self->{seed}"
                    . ($self->{steps} != 80 ? " FCGI_SPAWN_STEPS=$self->{steps}" : '')
                    . ($worker_from > 1 ? "; this worker's steps alone: FCGI_SPAWN_FROM_STEP=$worker_from" : '')
                    . ")\n")
                . "  request: " . _describe($req) . ($req->{query} ? " ?$req->{query}" : '') . "\n"
                . '  served before it by this worker (' . @previous . ' requests since it started; last first):'
                . "\n" . join('', map { '    ' . _describe($_) . "\n" } reverse @last);
            return $s;
        };
        if ($problem) {
            Test::More::ok(0, "$label: oracle sane") or Test::More::diag("$problem\n" . $history->()
                . Test::FCGI::Spawn::describe_difference($res));
            $failures++;
        }
        elsif (@crash) {
            Test::More::ok(0, "$label: no worker crash")
                or Test::More::diag("worker crash during or right before this request:\n  @crash\n" . $history->());
            $failures++;
        }
        elsif ($res->{same}) {
            Test::More::ok(1, $label);
        }
        elsif (my $e = _exception_for($o{exceptions}, $mode, $req, \@previous)) {
            TODO: {
                local $TODO = "known difference: $e->{reason}";
                Test::More::ok(0, $label);
            }
        }
        else {
            Test::More::ok(0, "$label: same bytes as plain CGI")
                or Test::More::diag($history->() . Test::FCGI::Spawn::describe_difference($res));
            $failures++;
        }
        if (!$res->{same} || $problem || @crash) {
            if ($failures >= $max_failures) {
                Test::More::diag("$mode: $failures failures, stopping this mode's sequence at step $step of "
                    . scalar @{ $self->{plan} });
                last;
            }
            if (!$res->{same} || @crash) {
                $boot->();
                @previous = ();
                ($worker) = $site->worker_pids;
                $take_baseline->();
                next;
            }
        }
        if (defined $now && defined $worker && $now != $worker) {
            Test::More::note("$mode step $step: worker $worker replaced by $now");
            @previous = ();
            $worker = $now;
            $take_baseline->();
        }
        elsif (my @left = grep { !$leak_reported{$_}++ } Test::FCGI::Spawn::files_left_open($worker, $fds_at_start)) {
            # As process exit would, the end of a request closes what the
            # script opened (a DATA handle is the compiled script's).
            Test::More::ok(0, "$label: no file or directory left open in the worker")
                or Test::More::diag("the worker holds, since this request or one before it:\n"
                    . join('', map { "    $_\n" } @left) . $history->());
            $failures++;
            $leaks++;
        }
        elsif ((my $more = $sockets_left->()) > 0) {
            Test::More::ok(0, "$label: no connection left open in the worker")
                or Test::More::diag("the worker holds $more socket(s) more than when it started, since this "
                    . "request or one before it\n" . $history->());
            $failures++;
            $leaks++;
            $sockets_at_start += $more;    # reported once
        }
        push @previous, $req;
    }
    Test::More::ok(!$leaks, "$mode: no request left a file or directory open in the worker");
    my @late = grep { /killed by SIG/ } split /\n/, $log_since->();
    Test::More::ok(!@late, "$mode: no worker crash after the last request")
        or Test::More::diag(join("\n", @late) . "\nlast requests: " . join(', ', map { _describe($_) } @previous > 3 ? @previous[-3 .. -1] : @previous));
    $sender->stop if $sender != $site;
    $site->stop;
    return $failures;
}

=head2 sanity(%o)

Every checker (and every request of C<requests>) on a fresh worker: a daemon
started by C<start> with C<--max-requests 1>, so each request gets a new
worker. Each must equal its oracle: otherwise the checker prints something
that differs even without a poisoner, and the suite could not tell a leak
from that.

=cut

sub sanity {
    my ($class, %o) = @_;
    my $site = $o{start}->($o{mode});
    my $sender = $o{sender} ? $o{sender}->($site) : $site;
    for my $req (@{ $o{requests} }) {
        my $res = $sender->compare($req);
        my $label = "$o{mode} fresh worker: " . _describe($req);
        my $problem = _oracle_sane($req, $res->{cgi});
        if ($problem) {
            Test::More::ok(0, "$label: oracle sane") or Test::More::diag($problem);
            next;
        }
        Test::More::ok($res->{same}, "$label equals plain CGI")
            or Test::More::diag(Test::FCGI::Spawn::describe_difference($res));
    }
    $sender->stop if $sender != $site;
    $site->stop;
    return;
}

1;
