package Test::FCGI::Spawn;

# A test module for a site's own `prove t/`: starts fcgi-spawn on a temp
# socket, sends it requests with the product's own client, runs the same
# request as a plain CGI process (the oracle) and compares the bytes, twice
# or more in a row on the one worker: a script that breaks when persistent
# is most often right on a fresh worker and wrong from its second run. The POD
# at the end is the user documentation; the comments say why the code is
# shaped this way.

use strict;
use warnings;

our $VERSION = '0.1.0';

use Carp qw(croak);
use Exporter qw(import);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Socket qw(SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(
    run_cgi compare_responses unified_diff base_env parse_cgi cgi_header multipart_body
    slurp spew wait_for free_port connect_to
    start_process stop_process kill_leftovers worker_pids descendants running rss_kb
    open_files files_left_open socket_count worker_started
);

# What `fcgi-spawn run` passes on of its own environment when no
# --pass-env is given (src/config.rs, DEFAULT_PASS_ENV).
our @DEFAULT_PASS_ENV = qw(PATH LANG LC_ALL LC_CTYPE TZ TMPDIR PERL5LIB);

# Placeholder both sides are reduced to when the script printed nothing: a
# CGI server answers that with its own 500 page, fcgi-spawn with its own.
my $NO_OUTPUT = "[no output: the server answers 500]\n";
# Through nginx, a response without a complete header block becomes a 502.
my $BAD_HEADER = "[no complete CGI header block: nginx answers 502]\n";

my %LIVE;     # pid => what, every process we started and have not reaped
my %SERVERS; # pid => daemon or nginx object (weak), stopped gracefully in END

END {
    my $keep = $?;
    for my $server (grep { defined } values %SERVERS) {
        # A daemon's own stop, not a subclass's (which may assert).
        my $stop = $server->isa(__PACKAGE__) ? \&stop : $server->can('stop');
        eval { $server->$stop; 1 };
    }
    for my $pid (keys %LIVE) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    %LIVE = ();
    $? = $keep;
}

# --- small helpers ------------------------------------------------------------
# Public (EXPORT_OK) because a site's tests need them around the daemon too:
# files, waiting, ports, processes.

# The bytes of $file from byte $from on ('' when it cannot be read).
sub slurp {
    my ($file, $from) = @_;
    open my $fh, '<:raw', $file or return '';
    seek $fh, $from, 0 if $from;
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

# Write $content to $file; a script (.pl, .cgi) is made executable, as a
# CGI script is (the daemon, like CGI, refuses one that is not), unless
# $mode says otherwise.
sub spew {
    my ($file, $content, $mode) = @_;
    open my $fh, '>:raw', $file or croak "cannot write $file: $!";
    print {$fh} $content;
    close $fh or croak "cannot close $file: $!";
    $mode //= 0755 if $file =~ /\.(?:pl|cgi)\z/;
    chmod $mode, $file if defined $mode;
    return $file;
}

# FCGI_SPAWN_WRAP: a command the daemon runs under (`valgrind ...`, as
# script/memcheck sets it); FCGI_SPAWN_TIMEOUT_SCALE: every wait of the
# harness multiplied by it, for a daemon that runs that much slower there.
sub daemon_prefix { return split ' ', $ENV{FCGI_SPAWN_WRAP} // '' }

sub timeout_scale {
    my $scale = $ENV{FCGI_SPAWN_TIMEOUT_SCALE};
    return 1 unless defined $scale && length $scale;
    croak "FCGI_SPAWN_TIMEOUT_SCALE=$scale: give a positive number (10: every wait ten times as long)"
        unless $scale =~ /\A[0-9]*\.?[0-9]+\z/ && $scale > 0;
    return $scale;
}

# Poll $cond every $every seconds (default 0.05) until it returns true or
# $timeout seconds (default 10, times timeout_scale) pass; returns its last
# value.
sub wait_for {
    my ($cond, $timeout, $every) = @_;
    my $deadline = time + ($timeout || 10) * timeout_scale();
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep $every || 0.05;
    }
    return $cond->();
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or croak "cannot bind a free loopback port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# A connection to a listening socket: a UNIX socket path or HOST:PORT.
sub connect_to {
    my ($listen) = @_;
    return $listen =~ m{/}
        ? IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $listen)
        : IO::Socket::INET->new(PeerAddr => $listen, Proto => 'tcp', Timeout => 5);
}

# Fork and exec argv, stdin from /dev/null, stdout/stderr appended to files,
# env (a hash) set in the child; the process is KILLed at END unless reaped
# before. With ready (a sub), wait until it returns true (timeout seconds,
# default 20); if the process exits first or the time runs out, croak with
# the command and log->() (default: its stdout file).
sub start_process {
    my (%a) = @_;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        @ENV{ keys %{ $a{env} } } = values %{ $a{env} } if $a{env};
        open STDIN, '<', '/dev/null' or POSIX::_exit(126);
        open STDOUT, '>>', $a{stdout} or POSIX::_exit(126);
        open STDERR, '>>', $a{stderr} or POSIX::_exit(126);
        exec { $a{argv}[0] } @{ $a{argv} } or POSIX::_exit(127);
    }
    $LIVE{$pid} = $a{argv}[0];
    return $pid unless $a{ready};
    my $state = wait_for(sub {
        return 'dead' if waitpid($pid, WNOHANG) == $pid;
        return $a{ready}->() ? 'up' : 0;
    }, $a{timeout} || 20, 0.02);
    return $pid if $state && $state eq 'up';
    my $why = $state ? "it exited (wait status $?)" : 'it did not get ready in time';
    if ($state) { delete $LIVE{$pid} }
    else { kill 'KILL', $pid; _reap($pid, 5) }
    croak(($a{name} || $a{argv}[0]) . " did not start: $why\ncommand: @{ $a{argv} }\n"
        . ($a{log} ? $a{log}->() : slurp($a{stdout})));
}

# Wait for $pid up to $timeout seconds, then KILL it (and its group when
# $group). Returns (wait status, timed out?).
sub _reap {
    my ($pid, $timeout, $group) = @_;
    my $deadline = time + $timeout * timeout_scale();
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid) { delete $LIVE{$pid}; return ($?, 0) }
        if ($r < 0) { delete $LIVE{$pid}; return (-1, 0) }
        last if time > $deadline;
        sleep 0.005;
    }
    kill 'KILL', ($group ? -$pid : $pid);
    waitpid $pid, 0;
    delete $LIVE{$pid};
    return ($?, 1);
}

sub _exit_code {
    my ($status) = @_;
    return ($status & 127) ? 128 + ($status & 127) : $status >> 8;
}

# Send $sig to a process start_process started ($sig 0: none, wait for an
# exit caused elsewhere), wait up to $grace seconds (default 10), then KILL
# it. Returns its wait status, -1 when it had to be killed, undef when it
# was not ours to wait for (never started here, or reaped already).
sub stop_process {
    my ($pid, $sig, $grace) = @_;
    return undef unless $pid && $LIVE{$pid};
    $grace ||= 10;
    my $what = $LIVE{$pid};
    kill $sig, $pid if $sig;
    my ($status, $killed) = _reap($pid, $grace);
    return $status unless $killed;
    Test::More::diag("pid $pid ($what) did not stop within ${grace}s" . ($sig ? " of $sig" : '') . ': sent KILL');
    return -1;
}

# Processes of @$pids still running (not zombies) after $grace seconds
# outlived what should have ended them: say so ($what: whose they are) and
# KILL them. Returns their pids.
sub kill_leftovers {
    my ($pids, $grace, $what) = @_;
    my @left = grep { running($_) } @$pids;
    wait_for(sub { @left = grep { running($_) } @left; !@left }, $grace) if @left;
    return unless @left;
    Test::More::diag("$what: @left still running: sending KILL");
    kill 'KILL', @left;
    return @left;
}

# pid => parent pid of every process, from /proc.
sub _parents {
    my %parent;
    opendir my $dh, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $stat = slurp("/proc/$p/stat") or next;
        $stat =~ s/^.*\)\s+//s;    # comm may contain spaces
        my (undef, $pp) = split ' ', $stat;
        $parent{$p} = $pp if defined $pp;
    }
    return %parent;
}

# Pids of a daemon's direct children (its workers); the daemon is a started
# object or a pid. In scalar context, how many.
sub worker_pids {
    my ($d) = @_;
    my $ppid = ref $d ? $d->pid : $d;
    # Without a pid every process whose parent is 0 (init, kthreadd) would
    # match, and a caller that kills "the workers" would signal them.
    return unless $ppid;
    my %parent = _parents();
    my @pids = sort { $a <=> $b } grep { $parent{$_} == $ppid } keys %parent;
    return wantarray ? @pids : scalar @pids;
}

# Every process below $pid (its children, then theirs).
sub descendants {
    my ($pid) = @_;
    my %parent = _parents();
    my %kids;
    push @{ $kids{ $parent{$_} } }, $_ for keys %parent;
    my @out;
    my @todo = ($pid);
    while (defined(my $p = shift @todo)) {
        my @k = @{ $kids{$p} || [] };
        push @out, @k;
        push @todo, @k;
    }
    return @out;
}

# The process exists and is not a zombie (an orphan's zombie waits for
# init to reap it, and kill 0 still finds it).
sub running {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat") or return 0;
    $stat =~ s/^.*\)\s+//s;
    return (split ' ', $stat)[0] ne 'Z';
}

# The files and directories $pid holds open (path => 1); /proc and
# /dev/null left out.
sub open_files {
    my ($pid) = @_;
    return {} unless defined $pid;
    return { map { $_ => 1 } grep { defined && m{\A/} && !m{\A/proc/} && $_ ne '/dev/null' }
        map { readlink } glob "/proc/$pid/fd/*" };
}

# What a worker holds open now that it did not hold in $at_start (an
# open_files of it), but for the DATA handles of compiled scripts (a file
# with __END__ or __DATA__): what a request left, which a CGI process's
# exit would have closed. The response can reach the client before the
# worker has put everything back (on a loaded machine, a while): what is
# still open is looked at again, for up to 2 s.
sub files_left_open {
    my ($pid, $at_start) = @_;
    my @left;
    for my $try (1 .. 10) {
        @left = grep { !$at_start->{$_} && !_has_data_section($_) } sort keys %{ open_files($pid) };
        last unless @left;
        sleep 0.2 if $try < 10;
    }
    return @left;
}

# Waits (up to $timeout s, default 10) until worker $pid is past its
# start: its process title no longer says "starting" (it says idle once
# its descriptors are all in place: a worker dups its channel to the
# master after `worker_init` runs). True when it is, or when the title
# cannot tell (the process is gone, or it shows no fcgi-spawn title).
sub worker_started {
    my ($pid, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $title = slurp("/proc/$pid/cmdline");
        return 1 if $title !~ /\Afcgi-spawn: worker starting/;
        return 0 if time > $deadline;
        sleep 0.05;
    }
}

# How many sockets $pid holds open, but for its end of the socket pair to
# each spare child it has (fork isolation's next request's process).
sub socket_count {
    my ($pid) = @_;
    my %parent = _parents();
    my $spares = grep { $parent{$_} == $pid && slurp("/proc/$_/cmdline") =~ /\Afcgi-spawn: spare child(?:\0|\z)/ }
        keys %parent;
    return -$spares + grep { defined && /\Asocket:/ } map { readlink } glob "/proc/$pid/fd/*";
}

sub _has_data_section {
    my ($path) = @_;
    return 0 unless -f $path && open my $fh, '<', $path;
    while (my $line = <$fh>) { return 1 if $line =~ /^__(?:END|DATA)__\b/ }
    return 0;
}

# Resident memory of $pid in kB.
sub rss_kb {
    my ($pid) = @_;
    my ($kb) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)\s+kB/m;
    return $kb;
}

sub _find_in_path {
    my ($name) = @_;
    for my $dir (File::Spec->path) {
        my $f = File::Spec->catfile($dir, $name);
        return $f if -f $f && -x _;
    }
    return undef;
}

# --- the daemon ---------------------------------------------------------------

sub start {
    my ($class, %o) = @_;
    my $bin = $o{binary} || $ENV{FCGI_SPAWN_BIN} || _find_in_path('fcgi-spawn')
        or croak 'fcgi-spawn not found: give binary => PATH, set FCGI_SPAWN_BIN or put it in PATH';
    croak "fcgi-spawn binary $bin is not executable" unless -x $bin;
    my $dir = $o{dir} || tempdir('test-fcgi-spawn-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless {
        binary  => $bin,
        dir     => $dir,
        listen  => $o{listen} || "$dir/fcgi.sock",
        log     => "$dir/daemon.log",
        stderr  => "$dir/daemon.stderr",
        timeout => $o{timeout} || 60,
        nreq    => 0,
        warm_runs => _warm_runs_option($o{warm_runs}, 2),
    }, $class;
    my %env = %{ $o{env} || {} };
    my @pass = $o{pass_env} ? @{ $o{pass_env} } : @DEFAULT_PASS_ENV;
    $self->{base_env} = base_env(pass_env => \@pass, env => \%env);
    $self->{isolation} = $o{isolation};

    # A launcher makes the listening socket and passes it on: no --listen.
    my @launcher = @{ $o{launcher} || [] };
    # systemd-socket-activate starts the daemon on the first connection.
    $self->{socket_activated} = @launcher && $launcher[0] =~ m{(?:\A|/)systemd-socket-activate\z};
    my @argv = (@launcher, daemon_prefix(), $bin, 'run', (@launcher ? () : ('--listen', $self->{listen})),
        '--log', $self->{log}, '--workers', (defined $o{workers} ? $o{workers} : 1));
    push @argv, map { ('--root', $_) } @{ $o{roots} || [] };
    push @argv, '--ext', $o{ext} if defined $o{ext};
    push @argv, map { ('--preload', $_) } @{ $o{preload} || [] };
    push @argv, map { ('--preload-script', $_) } @{ $o{preload_script} || [] };
    push @argv, '--isolation', $o{isolation} if defined $o{isolation};
    push @argv, map { ('--pass-env', $_) } @{ $o{pass_env} || [] };
    push @argv, map { ('--env', "$_=$env{$_}") } sort keys %env;
    push @argv, @{ $o{args} || [] };
    $self->{argv} = \@argv;
    $self->{pid} = start_process(argv => \@argv, stdout => $self->{stderr}, stderr => $self->{stderr},
        env => $o{daemon_env}, ready => sub { $self->_ready }, timeout => $o{start_timeout} || 20,
        name => 'fcgi-spawn', log => sub { "log:\n" . $self->log_text });
    delete $self->{poke};
    weaken($SERVERS{ $self->{pid} } = $self);
    return $self;
}

# Ready: the log says so and the socket takes a connection.
sub _ready {
    my ($self) = @_;
    $self->{poke} ||= connect_to($self->{listen}) if $self->{socket_activated} && -S $self->{listen};
    return 0 unless $self->log_text =~ /\bready\b/i;
    my $s = connect_to($self->{listen}) or return 0;
    close $s;
    return 1;
}

# warm_runs: how many times compare and same_as_cgi run a request.
sub _warm_runs_option {
    my ($n, $default) = @_;
    return $default unless defined $n;
    croak "warm_runs => $n: give a whole number, 1 or more (1: each request once)" unless $n =~ /\A[1-9][0-9]*\z/;
    return $n;
}

sub socket    { $_[0]{listen} }
sub warm_runs { $_[0]{warm_runs} }
sub pid       { $_[0]{pid} }
sub dir       { $_[0]{dir} }
sub binary    { $_[0]{binary} }
sub log_file  { $_[0]{log} }
sub argv      { @{ $_[0]{argv} } }
sub isolation { $_[0]{isolation} }
sub base_env_of { +{ %{ $_[0]{base_env} } } }

# Everything the daemon wrote: its --log file, then whatever reached its
# stderr (nothing, when the log file takes everything).
sub log_text {
    my ($self) = @_;
    return slurp($self->{log}) . slurp($self->{stderr});
}

# Lines of the log saying a worker died of a signal: a crash.
sub crashes {
    my ($self) = @_;
    return grep { /killed by SIG/ } split /\n/, $self->log_text;
}

# The daemon still runs (and was not reaped).
sub alive {
    my ($self) = @_;
    return 0 unless $LIVE{ $self->{pid} };
    return kill(0, $self->{pid}) && waitpid($self->{pid}, WNOHANG) == 0;
}

sub stop {
    my ($self, %o) = @_;
    return $self->{status} if $self->{stopped}++;
    my @workers = $self->worker_pids;
    $self->{status} = stop_process($self->{pid}, $o{signal} // 'TERM', $o{grace} || 15);
    # Workers must exit with their master.
    kill_leftovers(\@workers, 3, "workers of master $self->{pid}, which is gone");
    return $self->{status};
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    stop($self, grace => 5) if $self->{pid} && !$self->{stopped};
    return;
}

# --- requests -----------------------------------------------------------------

# The CGI params of a request, exactly as `fcgi-spawn request` sends them
# (src/cli/request.rs) and then the request's own; the module passes every
# one of them explicitly, so both sides see the same set whatever the
# client's defaults.
sub cgi_params {
    my ($req, $side) = @_;
    my $script = $req->{script};
    croak "request needs an absolute script path" unless defined $script && $script =~ m{^/};
    my $body = defined $req->{body} ? $req->{body} : undef;
    my $method = $req->{method} || (defined $body ? 'POST' : 'GET');
    my $query = defined $req->{query} ? $req->{query} : '';
    my ($base) = $script =~ m{([^/]*)\z};
    my $script_name = defined $req->{script_name} ? $req->{script_name} : "/$base";
    my $uri = $script_name . (defined $req->{path_info} ? $req->{path_info} : '');
    $uri .= "?$query" if length $query;
    my %p = (
        GATEWAY_INTERFACE => 'CGI/1.1',
        SERVER_PROTOCOL   => 'HTTP/1.1',
        SERVER_SOFTWARE   => 'fcgi-spawn-request',
        SERVER_NAME       => 'localhost',
        SERVER_PORT       => '80',
        REMOTE_ADDR       => '127.0.0.1',
        REQUEST_METHOD    => $method,
        SCRIPT_FILENAME   => $script,
        SCRIPT_NAME       => $script_name,
        REQUEST_URI       => $uri,
        QUERY_STRING      => $query,
        CONTENT_LENGTH    => defined $body ? length $body : 0,
    );
    $p{CONTENT_TYPE} = defined $req->{content_type} ? $req->{content_type} : 'application/x-www-form-urlencoded'
        if defined $body;
    $p{PATH_INFO} = $req->{path_info} if defined $req->{path_info};
    %p = (%p, %{ $req->{params} || {} });
    %p = (%p, %{ $req->{side_params}{$side} || {} }) if $side && $req->{side_params};
    return \%p;
}

# The environment the daemon gives every script before the request params:
# its own variables named by pass_env that are set, then the --env pairs.
sub base_env {
    my (%o) = @_;
    my @pass = $o{pass_env} ? @{ $o{pass_env} } : @DEFAULT_PASS_ENV;
    my %env;
    if (grep { $_ eq '*' } @pass) { %env = %ENV }
    else { exists $ENV{$_} and $env{$_} = $ENV{$_} for @pass }
    %env = (%env, %{ $o{env} || {} });
    return \%env;
}

# Send $req to the daemon with `fcgi-spawn request`.
sub request {
    my ($self, $req) = @_;
    my $params = cgi_params($req, 'persistent');
    my $log_before = -s $self->{log} || 0;
    my $timeout = $req->{timeout} || $self->{timeout};
    my ($out, $err, undef, $timed_out) = $self->_run_client(
        flags    => [ '--method', $params->{REQUEST_METHOD}, map { ('--param', "$_=$params->{$_}") } sort keys %$params ],
        body     => $req->{body},
        operands => [ '--', $req->{script}, $params->{QUERY_STRING} ],
        timeout  => $timeout);
    my %r = (raw => $out, stderr => $err, params => $params, via => 'fastcgi');
    $r{error} = "fcgi-spawn request timed out after $timeout s" if $timed_out;
    $r{error} = "fcgi-spawn request failed: $1" if !$r{error} && $r{stderr} =~ /^fcgi-spawn request: (.*)$/m;
    _parse_cgi(\%r);
    $self->_attach_log(\%r, $log_before, $req->{script});
    return \%r;
}

# Runs `fcgi-spawn request --connect SOCKET` with @{flags}, then --data and
# the body (in a file) when there is one, then @{operands}; KILLed after
# timeout seconds. Returns (stdout, stderr, exit code, timed out?).
sub _run_client {
    my ($self, %o) = @_;
    my $n = ++$self->{nreq};
    my $dir = $self->{dir};
    my ($out, $err, $in) = ("$dir/req$n.out", "$dir/req$n.err", "$dir/req$n.in");
    my @argv = ($self->binary, 'request', '--connect', $self->{listen}, @{ $o{flags} || [] });
    if (defined $o{body}) {
        spew($in, $o{body});
        push @argv, '--data', $in;
    }
    push @argv, @{ $o{operands} || [] };
    my $pid = start_process(argv => \@argv, stdout => $out, stderr => $err);
    my ($status, $timed_out) = _reap($pid, $o{timeout} || 60);
    my @res = (slurp($out), slurp($err), _exit_code($status), $timed_out);
    unlink grep { -e } $out, $err, $in;
    return @res;
}

# The end of the page the daemon sends for a script that printed nothing
# (src/cgi.rs, error_page).
my $DAEMON_500_PAGE = qr{<title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n\z};

# What the daemon logged during the request; whether the response is the
# daemon's own 500 for a script that printed nothing (its log says so,
# possibly a moment after the response went out).
sub _attach_log {
    my ($self, $r, $from, $script) = @_;
    my $read = sub { slurp($self->{log}, $from) };
    $r->{log} = $read->();
    my $line = qr/^.*\b500: \Q$script\E produced no output\b/m;
    # Only the daemon's own page can have a log line still on its way; a
    # script's 500 (CGI::Carp's, a die handler's) waits for nothing.
    my $daemon_page = defined $r->{body} && $r->{body} =~ $DAEMON_500_PAGE;
    if (defined $r->{status} && $r->{status} == 500 && $daemon_page && $r->{log} !~ $line) {
        wait_for(sub { ($r->{log} = $read->()) =~ $line }, 2, 0.02);
    }
    $r->{no_output} = $r->{log} =~ $line ? 1 : 0;
    return;
}

# Splits a raw CGI response into head, body, headers ([lc name, value]
# pairs, in order) and status, as a web server reads it: Status header,
# else 302 with Location, else 200. Without a complete header block: head,
# status undef, the whole response as body.
sub parse_cgi {
    my ($raw) = @_;
    $raw = '' unless defined $raw;
    return { head => undef, body => $raw, headers => [], status => undef }
        unless $raw =~ /\A(.*?)\r?\n\r?\n(.*)\z/s;
    my ($head, $body) = ($1, $2);
    my @h;
    for my $line (split /\r?\n/, $head) {
        push @h, [ lc $1, $2 ] if $line =~ /^([^:\s]+):[ \t]*(.*?)\s*$/;
    }
    my ($st) = map { $_->[1] =~ /^(\d{3})/ ? $1 : () } grep { $_->[0] eq 'status' } @h;
    $st = 302 if !defined $st && grep { $_->[0] eq 'location' } @h;
    return { head => $head, body => $body, headers => \@h, status => defined $st ? $st : 200 };
}

# The first value of header $name (any case) in a parsed response.
sub cgi_header {
    my ($r, $name) = @_;
    my ($v) = map { $_->[1] } grep { $_->[0] eq lc $name } @{ $r->{headers} || [] };
    return $v;
}

# A multipart/form-data body (a file upload) for a request's body:
# multipart_body(name => value, field => [filename, content, type], ...)
# returns ($body, $content_type).
sub multipart_body {
    my (@parts) = @_;
    my $b = 'fcgiSpawnTestBoundary' . int(rand 1e9);
    my $body = '';
    while (my ($name, $v) = splice @parts, 0, 2) {
        $body .= "--$b\r\n";
        if (ref $v) {
            my ($fname, $content, $type) = @$v;
            $body .= qq{Content-Disposition: form-data; name="$name"; filename="$fname"\r\n}
                   . 'Content-Type: ' . ($type || 'application/octet-stream') . "\r\n\r\n$content\r\n";
        }
        else {
            $body .= qq{Content-Disposition: form-data; name="$name"\r\n\r\n$v\r\n};
        }
    }
    $body .= "--$b--\r\n";
    return ($body, "multipart/form-data; boundary=$b");
}

# A response hash with raw gets parse_cgi's fields.
sub _parse_cgi {
    my ($r) = @_;
    my $p = parse_cgi($r->{raw});
    @$r{ keys %$p } = values %$p;
    return $r;
}

# --- the oracle: the same request as a plain CGI process ----------------------

sub run_cgi {
    my ($req, %o) = @_;
    my $env = $o{env} || base_env();
    my $params = $o{params} || cgi_params($req, 'cgi');
    my $script = $params->{SCRIPT_FILENAME};
    return { error => "run_cgi: $script does not exist", raw => '', stderr => '', params => $params, via => 'cgi' }
        unless -e $script;
    my ($dir) = $script =~ m{\A(.*)/[^/]*\z}s;
    $dir = '/' if !defined $dir || $dir eq '';
    my $stdin = '/dev/null';
    my $body_file;
    if (defined $req->{body} && length $req->{body}) {
        $body_file = File::Temp->new(TEMPLATE => 'test-fcgi-spawn-body-XXXXXX', TMPDIR => 1);
        $stdin = spew($body_file->filename, $req->{body});
    }
    my @argv = -x $script && _has_shebang($script) ? ($script) : ($^X, _taint_switch($script), $script);
    # An isindex query (no "=") becomes the command line, words split on
    # "+" and decoded (RFC 3875, 4.4), as CGI servers do.
    my $qs = defined $params->{QUERY_STRING} ? $params->{QUERY_STRING} : '';
    push @argv, map { (my $w = $_) =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $w } split /\+/, $qs
        if length $qs && index($qs, '=') < 0;
    my $timeout = $req->{timeout} || $o{timeout} || 60;

    # stdout and stderr are pipes, as a CGI server (and fcgi-spawn) gives them.
    pipe my $from, my $to or croak "pipe: $!";
    pipe my $efrom, my $eto or croak "pipe: $!";
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $from;
        close $efrom;
        POSIX::setpgid(0, 0);
        chdir $dir or POSIX::_exit(126);
        %ENV = (%$env, %$params);
        open STDIN, '<', $stdin or POSIX::_exit(126);
        open STDOUT, '>&', $to or POSIX::_exit(126);
        open STDERR, '>&', $eto or POSIX::_exit(126);
        close $to;
        close $eto;
        exec { $argv[0] } @argv or print STDERR "exec @argv: $!\n";
        POSIX::_exit(127);
    }
    $LIVE{$pid} = $script;
    close $to;
    close $eto;
    # Read until every holder of stdout closed it (children included), as a
    # CGI server does.
    my ($out, $err) = ('', '');
    my $sel = IO::Select->new($from, $efrom);
    my $deadline = time + $timeout;
    my $timed_out = 0;
    while ($sel->count) {
        my $left = $deadline - time;
        if ($left <= 0) { $timed_out = 1; last }
        for my $fh ($sel->can_read($left)) {
            my $buf = $fh == $from ? \$out : \$err;
            my $n = sysread $fh, $$buf, 65536, length $$buf;
            $sel->remove($fh) unless $n;
        }
    }
    close $from;
    close $efrom;
    my ($status) = _reap($pid, $timed_out ? 0 : $timeout, 1);
    kill 'KILL', -$pid if $timed_out;
    my %r = (raw => $out, stderr => $err, params => $params, via => 'cgi', exit => _exit_code($status));
    $r{error} = "plain CGI run timed out after $timeout s" if $timed_out;
    return _parse_cgi(\%r);
}

# perl refuses a -T on the #! line it was not given on its command line.
# exec would refuse a file without one (ENOEXEC); a CGI server too, but a
# test's script made executable for the daemon may lack it.
sub _has_shebang {
    my ($script) = @_;
    open my $fh, '<', $script or return 0;
    my $n = read $fh, my $two, 2;
    return $n && $n == 2 && $two eq '#!';
}

sub _taint_switch {
    my ($script) = @_;
    open my $fh, '<', $script or return ();
    my $first = <$fh>;
    return () unless defined $first && $first =~ /^#!\S*perl\S*\s+(.*)/;
    my $sw = $1;
    return $sw =~ /(?:^|\s)-\w*([Tt])/ ? ("-$1") : ();
}

sub run_cgi_for {
    my ($self, $req, %o) = @_;
    return run_cgi($req, env => $self->{base_env}, timeout => $self->{timeout}, %o);
}

# --- comparison -----------------------------------------------------------------

# The text compared for one side. $via says how the persistent side was
# reached: 'fastcgi' compares the raw CGI bytes; 'http' compares what a
# browser gets from nginx (status, the script's headers in a canonical
# order, body).
sub _normalize {
    my ($r, $req, $via, $side, $ids) = @_;
    return "[request failed: $r->{error}]\n" if $r->{error};
    my ($head, $body);
    if ($side eq 'cgi') {
        return $NO_OUTPUT if $r->{raw} eq '';
        if (!defined $r->{head}) {
            return $BAD_HEADER if $via eq 'http';
            return _finish($r->{raw}, undef, $req, $ids);
        }
        # nginx refuses a header block with a line that is not a header.
        return $BAD_HEADER if $via eq 'http' && grep { !/^[A-Za-z0-9_-]+:/ } split /\r?\n/, $r->{head};
        if ($via eq 'fastcgi') {
            ($head, $body) = $r->{raw} =~ /\A(.*?\r?\n\r?\n)(.*)\z/s;
        }
        else {
            $head = _http_head($r->{status}, [ grep { $_->[0] ne 'status' } @{ $r->{headers} } ]);
            $body = $r->{body};
        }
    }
    else {
        return $NO_OUTPUT if $r->{no_output};
        if ($via eq 'fastcgi') {
            return _finish($r->{raw}, undef, $req, $ids) unless defined $r->{head};
            ($head, $body) = $r->{raw} =~ /\A(.*?\r?\n\r?\n)(.*)\z/s;
        }
        else {
            return $BAD_HEADER if $r->{bad_header};
            $head = _http_head($r->{status}, $r->{headers});
            $body = $r->{body};
        }
    }
    return _finish($head, $body, $req, $ids);
}

my %HOP = map { $_ => 1 } qw(server date connection transfer-encoding keep-alive);

sub _http_head {
    my ($status, $headers) = @_;
    my @h = grep { !$HOP{ $_->[0] } } @$headers;
    my $i = 0;
    # Names in one spelling (nginx writes the ones it knows its own way),
    # Title-Case so that masks written for CGI headers apply.
    my @sorted = map { $_->[1] } sort { $a->[0] cmp $b->[0] || $a->[2] <=> $b->[2] }
        map { (my $n = $_->[0]) =~ s/(^|-)(\w)/$1\u$2/g; [ $_->[0], "$n: $_->[1]\n", $i++ ] } @h;
    return "Status: " . (defined $status ? $status : '?') . "\n" . join('', @sorted) . "\n";
}

# gunzip, then ids, masks and sorting, as the request asks.
sub _finish {
    my ($head, $body, $req, $ids) = @_;
    if (!defined $body) {
        my $t = _mask(_map_ids($head, $req, $ids), $req);
        return $req->{sort_lines} ? _sort_lines($t, $req->{sort_lines_match}) : $t;
    }
    if ($req->{gunzip} && $body =~ /\A\x1f\x8b/) {
        require IO::Uncompress::Gunzip;
        my $plain;
        if (IO::Uncompress::Gunzip::gunzip(\$body, \$plain, MultiStream => 1, Transparent => 0, Strict => 1)) {
            $body = "<gunzipped>\n$plain";
        }
        else {
            no warnings 'once';
            $body = "<gzip stream broken: $IO::Uncompress::Gunzip::GunzipError; " . length($body) . " bytes>\n";
        }
    }
    $head = _mask(_map_ids($head, $req, $ids), $req);
    $body = _mask(_map_ids($body, $req, $ids), $req);
    $body = _sort_lines($body, $req->{sort_lines_match}) if $req->{sort_lines};
    return $head . $body;
}

# map_ids: each match (or its first capture) becomes "<id N>", N numbering
# the distinct values in their order of first appearance on that side
# across the requests sharing $ids (a site's or nginx's comparisons).
sub _map_ids {
    my ($s, $req, $ids) = @_;
    return $s unless $req->{map_ids};
    $ids ||= {};
    for my $re (@{ $req->{map_ids} }) {
        $s =~ s{$re}{
            my $id = defined $1 ? $1 : $&;
            my $n = $ids->{map}{$id} ||= ++$ids->{n};
            defined $1 ? substr($&, 0, $-[1] - $-[0]) . "<id $n>" . substr($&, $+[1] - $-[0]) : "<id $n>";
        }ge;
    }
    return $s;
}

sub _mask {
    my ($s, $req) = @_;
    for my $re (@{ $req->{mask} || [] }) {
        $s =~ s/$re/<masked>/g;
    }
    return $s;
}

# All lines sorted, or with $only, each run of consecutive lines matching it
# (the rows of one table) sorted in place.
sub _sort_lines {
    my ($s, $only) = @_;
    my @l = split /(?<=\n)/, $s;
    $l[-1] .= "\n" if @l && $l[-1] !~ /\n\z/;
    return join '', sort @l unless $only;
    my (@out, @run);
    for my $line (@l, undef) {
        if (defined $line && $line =~ $only) { push @run, $line; next }
        push @out, sort @run;
        @run = ();
        push @out, $line if defined $line;
    }
    return join '', @out;
}

# compare_responses($persistent, $cgi, $req, $via, $ids) ->
# {same, diff, persistent_text, cgi_text}; $ids: {persistent => {}, cgi => {}},
# the state of map_ids across requests.
sub compare_responses {
    my ($p, $c, $req, $via, $ids) = @_;
    $via ||= $p->{via} || 'fastcgi';
    $ids ||= {};
    my $pt = _normalize($p, $req, $via, 'persistent', $ids->{persistent} ||= {});
    my $ct = _normalize($c, $req, $via, 'cgi', $ids->{cgi} ||= {});
    my %res = (same => $pt eq $ct ? 1 : 0, persistent_text => $pt, cgi_text => $ct,
        persistent => $p, cgi => $c);
    $res{diff} = $res{same} ? '' : unified_diff($ct, $pt, 'plain CGI', 'persistent');
    return \%res;
}

sub compare {
    my ($self, $req) = @_;
    return _compare_runs($self, $req, 'fastcgi', sub {
        my ($sent) = @_;
        return ($self->request($sent), $self->run_cgi_for($sent));
    });
}

# The request $holder->{warm_runs} times in a row (the daemon's one worker
# serves them one after the other), each run a full request on both sides:
# $run->($request) returns the persistent response and the oracle's, with
# the cookie jars and id numbering carried from run to run as from request
# to request. Returns the comparison of the first run that differs (else of
# the last run), with run (its number), warm_runs and results (every run's
# comparison). A run whose request failed (a timeout: the worker is still
# busy) ends the series.
sub _compare_runs {
    my ($holder, $req, $via, $run) = @_;
    my $n = $holder->{warm_runs} || 1;
    my @results;
    for my $i (1 .. $n) {
        my $sent = _with_jar($holder, $req);
        my ($p, $c) = $run->($sent);
        _keep_cookies($holder, $sent, persistent => $p, cgi => $c);
        push @results, compare_responses($p, $c, $sent, $via, $holder->{ids} ||= {});
        last if $p->{error};
    }
    my ($first) = grep { !$results[$_]{same} } 0 .. $#results;
    my $k = defined $first ? $first : $#results;
    my %res = (%{ $results[$k] }, run => $k + 1, warm_runs => $n, results => \@results);
    $res{diff} = unified_diff($res{cgi_text}, $res{persistent_text}, 'plain CGI', "persistent, run $res{run}")
        if !$res{same} && $n > 1;
    return \%res;
}

# Cookie jars (request key jar => NAME): one per name and side, filled from
# Set-Cookie headers (an empty value, Max-Age=0 or an expiry in 1970-2009
# removes the cookie) and sent as HTTP_COOKIE (names sorted), unless the
# request sets HTTP_COOKIE itself.
sub _with_jar {
    my ($holder, $req) = @_;
    my $jar = $req->{jar} or return $req;
    my %side;
    for my $s (qw(persistent cgi)) {
        my %p = (%{ $req->{params} || {} }, %{ ($req->{side_params} || {})->{$s} || {} });
        $side{$s} = { %{ ($req->{side_params} || {})->{$s} || {} } };
        my $c = $holder->{jars}{$s}{$jar} || {};
        $side{$s}{HTTP_COOKIE} = join '; ', map { "$_=$c->{$_}" } sort keys %$c
            if !exists $p{HTTP_COOKIE} && %$c;
    }
    return { %$req, side_params => \%side };
}

sub _keep_cookies {
    my ($holder, $req, %resp) = @_;
    my $jar = $req->{jar} or return;
    for my $s (keys %resp) {
        for my $h (@{ $resp{$s}{headers} || [] }) {
            next unless $h->[0] eq 'set-cookie' && $h->[1] =~ /^\s*([^=;\s]+)=([^;]*)(.*)$/;
            my ($k, $v, $attrs) = ($1, $2, $3);
            if ($v eq '' || $attrs =~ /max-age=0\b/i || $attrs =~ /expires=\w+,\s*\d+[- ]\w+[- ](?:19\d\d|200\d)/i) {
                delete $holder->{jars}{$s}{$jar}{$k};
            }
            else {
                $holder->{jars}{$s}{$jar}{$k} = $v;
            }
        }
    }
    return;
}

sub same_as_cgi {
    my ($self, $req, $name) = @_;
    my $res = $self->compare($req);
    return _assert($res, $req, $name);
}

sub _assert {
    my ($res, $req, $name) = @_;
    # The query and a body are part of the page: two pages of one script
    # get two names.
    $name = ($req->{name} || join '', $req->{script},
        (defined $req->{query} && length $req->{query} ? "?$req->{query}" : ''),
        (defined $req->{body} && length $req->{body} ? ' (POST)' : ''))
        . ': same bytes as plain CGI' unless defined $name;
    local $Test::Builder::Level = $Test::Builder::Level + 2;
    my $ok = Test::More::ok($res->{same}, $name);
    Test::More::diag(describe_difference($res)) unless $ok;
    return $ok;
}

# A human explanation of a failed comparison: the diff, then each side's
# stderr (and the daemon's log lines for the request).
sub describe_difference {
    my ($res) = @_;
    my $s = _which_runs($res) . $res->{diff};
    my $p = $res->{persistent};
    my $c = $res->{cgi};
    $s .= "plain CGI stderr:\n" . _indent($c->{stderr}) if length($c->{stderr} || '');
    $s .= "daemon log during the request:\n" . _indent($p->{log}) if length($p->{log} || '');
    return $s;
}

# Which of the runs of a request differ, and whether the first that does
# met a warm worker: "on a warm worker (run 2 of 2)" is the line that tells
# a site owner the script keeps state from one request to the next.
sub _which_runs {
    my ($res) = @_;
    my $n = $res->{warm_runs} || 1;
    return '' if $n == 1 || !$res->{results};
    my @differ = grep { !$res->{results}[ $_ - 1 ]{same} } 1 .. @{ $res->{results} };
    my $k = $res->{run};
    my $list = @differ == 1 ? "run @differ" : 'runs ' . join(', ', @differ[0 .. $#differ - 1]) . " and $differ[-1]";
    my $s = "the request ran $n times in a row on the daemon; $list of $n "
        . (@differ == 1 ? 'differs' : 'differ') . " from plain CGI";
    $s .= ' (runs ' . (@{ $res->{results} } + 1) . "-$n not sent: the request failed)"
        if @{ $res->{results} } < $n;
    $s .= "\n";
    if ($k > 1) {
        $s .= "different on a warm worker (run $k): "
            . ($k == 2 ? 'run 1 was' : 'runs 1-' . ($k - 1) . ' were')
            . " identical, so an earlier run left state in the worker that changes this page\n";
    }
    return $s;
}

sub _indent {
    my ($t) = @_;
    my @l = split /\n/, $t;
    splice @l, 40, @l - 40, '    ... (' . (@l - 40) . ' more lines)' if @l > 40;
    return join '', map { '    ' . _visible($_) . "\n" } @l;
}

# --- a unified diff ---------------------------------------------------------------

sub _visible {
    my ($l) = @_;
    $l =~ s/([^\x20-\x7e\t])/$1 eq "\r" ? '\r' : sprintf('\x%02x', ord $1)/ge;
    $l = substr($l, 0, 400) . '...(' . (length($l) - 400) . ' more)' if length $l > 400;
    return $l;
}

# Lines of $a and $b (keeping "\n" so a missing final newline shows), in
# unified format with 3 lines of context; Algorithm::Diff when installed,
# else the differing middle after the common prefix and suffix.
sub unified_diff {
    my ($x, $y, $xname, $yname) = @_;
    my @a = split /(?<=\n)/, $x;
    my @b = split /(?<=\n)/, $y;
    my @ops;    # [' '|'-'|'+', line]
    if (eval { require Algorithm::Diff; 1 }) {
        for my $h (Algorithm::Diff::sdiff(\@a, \@b)) {
            my ($op, $l, $r) = @$h;
            if    ($op eq 'u') { push @ops, [ ' ', $l ] }
            elsif ($op eq '-') { push @ops, [ '-', $l ] }
            elsif ($op eq '+') { push @ops, [ '+', $r ] }
            else { push @ops, [ '-', $l ], [ '+', $r ] }
        }
        # sdiff interleaves changed pairs; unified format lists a run's
        # removals before its additions.
        my @sorted;
        while (@ops) {
            if ($ops[0][0] eq ' ') { push @sorted, shift @ops; next }
            my @run;
            push @run, shift @ops while @ops && $ops[0][0] ne ' ';
            push @sorted, (grep { $_->[0] eq '-' } @run), (grep { $_->[0] eq '+' } @run);
        }
        @ops = @sorted;
    }
    else {
        my $pre = 0;
        $pre++ while $pre < @a && $pre < @b && $a[$pre] eq $b[$pre];
        my $suf = 0;
        $suf++ while $suf < @a - $pre && $suf < @b - $pre && $a[-1 - $suf] eq $b[-1 - $suf];
        @ops = ((map { [ ' ', $_ ] } @a[0 .. $pre - 1]),
            (map { [ '-', $_ ] } @a[$pre .. $#a - $suf]),
            (map { [ '+', $_ ] } @b[$pre .. $#b - $suf]),
            (map { [ ' ', $_ ] } @a[@a - $suf .. $#a]));
    }
    # A long run of removals must not hide the additions after it: each side
    # of a run shows at most 40 lines.
    my @capped;
    my ($side, $count) = ('', 0);
    for my $op (@ops) {
        if ($op->[0] ne $side) { ($side, $count) = ($op->[0], 0) }
        $count++;
        if ($side ne ' ' && $count == 41) { push @capped, [ $side, "... (more lines)\n", 'marker' ] }
        push @capped, $side ne ' ' && $count > 40 ? [ @$op[0, 1], 'hidden' ] : $op;
    }
    @ops = @capped;
    my $out = "--- $xname\n+++ $yname\n";
    my ($ai, $bi) = (1, 1);
    my @hunk;
    my ($ha, $hb, $na, $nb, $trail) = (0, 0, 0, 0, 0);
    my $lines = 0;
    my $flush = sub {
        return unless @hunk;
        $out .= "@@ -$ha,$na +$hb,$nb @@\n" . join '', @hunk;
        @hunk = ();
    };
    for my $i (0 .. $#ops) {
        my ($op, $l, $how) = @{ $ops[$i] };
        my $near = grep { $ops[$_][0] ne ' ' } grep { $_ >= 0 && $_ <= $#ops } $i - 3 .. $i + 3;
        if ($op ne ' ' || $near) {
            if (!@hunk) { ($ha, $hb, $na, $nb) = ($ai, $bi, 0, 0) }
            if ($how && $how eq 'marker') { push @hunk, $l; next }
            $na++ if $op ne '+';
            $nb++ if $op ne '-';
            if ($how && $how eq 'hidden') {
                $ai++ if $op ne '+';
                $bi++ if $op ne '-';
                next;
            }
            my $text = _visible($l =~ /\n\z/ ? substr($l, 0, -1) : $l);
            $text .= "\n" . '\ No newline at end' if $l !~ /\n\z/;
            push @hunk, "$op$text\n";
            if (++$lines > 200) { push @hunk, "... (diff cut after 200 lines)\n"; $flush->(); return $out }
        }
        else {
            $flush->();
        }
        $ai++ if $op ne '+';
        $bi++ if $op ne '-';
    }
    $flush->();
    return $out;
}

# --- nginx in front -------------------------------------------------------------

sub start_nginx {
    my ($self, %o) = @_;
    return Test::FCGI::Spawn::Nginx->start(%o, backend => $self->{listen}, site => $self, dir => $self->{dir});
}

package Test::FCGI::Spawn::Nginx;

use strict;
use warnings;
use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

# The FastCGI params nginx sends, one table for the config and for the access
# log that tells the oracle what the script got: [name, nginx variable,
# if_not_empty]. The request headers go as HTTP_* (nginx's default).
our @PARAMS = (
    [ QUERY_STRING      => '$query_string' ],
    [ REQUEST_METHOD    => '$request_method' ],
    [ CONTENT_TYPE      => '$content_type' ],
    [ CONTENT_LENGTH    => '$content_length' ],
    [ SCRIPT_NAME       => '$fastcgi_script_name' ],
    [ SCRIPT_FILENAME   => '$document_root$fastcgi_script_name' ],
    [ PATH_INFO         => '$fastcgi_path_info', 1 ],
    [ REQUEST_URI       => '$request_uri' ],
    [ DOCUMENT_URI      => '$document_uri' ],
    [ DOCUMENT_ROOT     => '$document_root' ],
    [ SERVER_PROTOCOL   => '$server_protocol' ],
    [ REQUEST_SCHEME    => '$scheme' ],
    [ GATEWAY_INTERFACE => 'CGI/1.1' ],
    [ SERVER_SOFTWARE   => 'nginx/$nginx_version' ],
    [ REMOTE_ADDR       => '$remote_addr' ],
    [ REMOTE_PORT       => '$remote_port' ],
    [ SERVER_ADDR       => '$server_addr' ],
    [ SERVER_PORT       => '$server_port' ],
    [ SERVER_NAME       => '$server_name' ],
    [ HTTP_HOST         => '$host' ],
);

# The nginx binary: FCGI_SPAWN_NGINX, else the usual places.
sub binary {
    my $n = $ENV{FCGI_SPAWN_NGINX}
        || (grep { -x } '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx')[0];
    croak 'nginx not found (set FCGI_SPAWN_NGINX)' unless $n;
    return $n;
}

# Options: backend (socket path or HOST:PORT), root (document root, default
# "/": the URL path of a script is then its file path), dir (where the
# prefix goes), site (the Test::FCGI::Spawn whose log names failed scripts).
sub start {
    my ($class, %o) = @_;
    my $nginx = binary();
    my $dir = $o{dir} || File::Temp::tempdir('test-fcgi-spawn-nginx-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $n = 0;
    $n++ while -e "$dir/nginx$n";
    my $prefix = "$dir/nginx$n";
    mkdir $prefix or croak "mkdir $prefix: $!";
    mkdir "$prefix/$_" for qw(logs tmp);
    my $port = Test::FCGI::Spawn::free_port();
    my $root = defined $o{root} ? $o{root} : '/';
    my $backend = $o{backend} or croak 'start: backend => socket needed';
    my $upstream = $backend =~ m{/} ? "unix:$backend" : $backend;
    # As root, nginx workers would become "nobody", which cannot enter the
    # private temp dir holding the socket.
    my $user = $> == 0 ? "user root root;\n" : '';
    # Params other than HTTP headers (params => [NAME, ...]) travel in a
    # request header X-Cgi-Param-NAME that nginx turns into the param and
    # keeps from the script (the HTTP_X_CGI_PARAM_* param set empty is not
    # sent, and overrides the header).
    my @extra = @{ $o{params} || [] };
    my %standard = map { $_->[0] => $_ } @PARAMS;
    # A standard param a request may override: the carrier's value when
    # sent, else the usual one (an nginx map).
    my $maps = join '', map {
        my $var = _carrier_var($_);
        "    map \$http_$var \$fcgi_spawn_$var { \"\" \"$standard{$_}[1]\"; default \$http_$var; }\n"
    } grep { $standard{$_} } @extra;
    my %extra = map { $_ => 1 } @extra;
    my @table = ((map { $extra{ $_->[0] } ? [ $_->[0], '$fcgi_spawn_' . _carrier_var($_->[0]), $_->[2] ] : $_ } @PARAMS),
        map { [ $_, '$http_' . _carrier_var($_), 1 ] } grep { !$standard{$_} } @extra);
    my $fparams = join '', map {
        "            fastcgi_param $_->[0] $_->[1]" . ($_->[2] ? ' if_not_empty' : '') . ";\n"
    } @table;
    $fparams .= join '', map { '            fastcgi_param HTTP_' . uc(_carrier_var($_)) . qq{ "" if_not_empty;\n} } @extra;
    my $logfmt = join ',', map { qq{"$_->[0]":"$_->[1]"} } @table;
    my $keep = !defined $o{keep_conn} || $o{keep_conn};
    my $pass = "            fastcgi_pass fcgi_spawn;\n            fastcgi_keep_conn " . ($keep ? 'on' : 'off') . ";\n"
        . "            fastcgi_read_timeout 60s;\n$fparams";
    # Scripts named .pl/.cgi, and the ones given in scripts (installed
    # without an extension), go to the daemon.
    my $locations = join '', map {
        my $path = $_;
        $path =~ s/^\Q$root\E(?=\/)// if $root ne '/';
        my $re = quotemeta $path;
        "        location ^~ $path {\n            fastcgi_split_path_info ^($re)(/.*)\$;\n$pass        }\n"
    } @{ $o{scripts} || [] };
    $locations .= "        location ~ \\.(pl|cgi)(/|\$) {\n"
        . "            fastcgi_split_path_info ^(.+?\\.(?:pl|cgi))(/.*)\$;\n$pass        }\n";
    my $conf = <<"CONF";
${user}daemon off;
master_process on;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log info;
events { worker_connections 256; }
http {
${maps}    log_format fcgi_params escape=json '{$logfmt}';
    access_log $prefix/logs/params.log fcgi_params;
    log_format timed '\$msec \$connection \$status \$request_time \$upstream_response_time "\$request"';
    access_log $prefix/logs/access.log timed;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    client_max_body_size 64m;
    default_type application/octet-stream;
    upstream fcgi_spawn {
        server $upstream;
        ${\ ($keep ? 'keepalive 8;' : '') }
    }
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $root;
$locations    }
}
CONF
    Test::FCGI::Spawn::spew("$prefix/nginx.conf", $conf);
    my $self = bless { prefix => $prefix, port => $port, root => $root, table => \@table,
        extra => { map { $_ => 1 } @extra },
        warm_runs => Test::FCGI::Spawn::_warm_runs_option($o{warm_runs}, $o{site} ? $o{site}{warm_runs} : 2) }, $class;
    if ($o{site}) { $self->{site} = $o{site}; weaken $self->{site} }
    $self->{pid} = Test::FCGI::Spawn::start_process(
        argv   => [ $nginx, '-p', "$prefix/", '-c', "$prefix/nginx.conf", '-e', "$prefix/logs/error.log" ],
        stdout => "$prefix/logs/stderr.log", stderr => "$prefix/logs/stderr.log",
        ready  => sub { my $s = Test::FCGI::Spawn::connect_to("127.0.0.1:$port") or return 0; close $s; 1 },
        timeout => 10, name => 'nginx',
        log    => sub { join '', map { Test::FCGI::Spawn::slurp("$prefix/logs/$_") } qw(stderr.log error.log) });
    weaken($SERVERS{ $self->{pid} } = $self);
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub root { $_[0]{root} }
sub url  { my ($self, $path) = @_; return "http://127.0.0.1:$self->{port}" . (defined $path ? $path : '/') }
sub error_log_text { Test::FCGI::Spawn::slurp("$_[0]{prefix}/logs/error.log") }
sub access_log_text { Test::FCGI::Spawn::slurp("$_[0]{prefix}/logs/access.log") }

sub stop {
    my ($self) = @_;
    return $self->{status} if $self->{stopped}++;
    return $self->{status} = Test::FCGI::Spawn::stop_process($self->{pid}, 'QUIT', 10);
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop if $self->{pid} && !$self->{stopped};
    return;
}

# The URL path of a request: the script's path under the document root.
sub _path_of {
    my ($self, $req) = @_;
    my $script = $req->{script};
    my $root = $self->{root};
    $root =~ s{/\z}{};
    croak "$script is not under the nginx root $self->{root}" unless index($script, "$root/") == 0;
    my $path = substr $script, length $root;
    $path .= $req->{path_info} if defined $req->{path_info};
    $path =~ s{([^A-Za-z0-9\-._~/:@!\$&'()*+,;=])}{sprintf '%%%02X', ord $1}ge;
    my $q = defined $req->{query} ? $req->{query} : '';
    return length $q ? "$path?$q" : $path;
}

# nginx's variable name for the header carrying param $name.
sub _carrier_var { return 'x_cgi_param_' . lc $_[0] }

sub _header_name {
    my ($var) = @_;
    (my $name = lc $var) =~ s/_/-/g;
    $name =~ s/(^|-)(\w)/$1\u$2/g;
    return $name;
}

# HTTP request headers for the params of the request: HTTP_* as themselves,
# the names given to start's params in their carrier header; no other param
# can travel through a web server.
sub _headers_of {
    my ($self, $req, $side) = @_;
    my %p = (%{ $req->{params} || {} }, %{ ($req->{side_params} || {})->{$side} || {} });
    my @h;
    for my $k (sort keys %p) {
        if ($k =~ /^HTTP_(\w+)\z/) { push @h, [ _header_name($1), $p{$k} ] }
        elsif ($self->{extra}{$k}) { push @h, [ _header_name(_carrier_var($k)), $p{$k}, $k ] }
        else { croak "param $k cannot be sent through nginx (not HTTP_*, not in start's params)" }
    }
    return \@h;
}

# Whether a request can go through this nginx: its params are HTTP_* or
# among start's params.
sub can_send {
    my ($self, $req) = @_;
    my %p = (%{ $req->{params} || {} }, map { %{ $_ || {} } } values %{ $req->{side_params} || {} });
    return !grep { !/^HTTP_\w+\z/ && !$self->{extra}{$_} } keys %p;
}

# One HTTP/1.1 request on a fresh connection; the response is parsed
# (chunked bodies decoded) and the params nginx sent are read back from its
# access log.
sub request {
    my ($self, $req) = @_;
    my $method = $req->{method} || (defined $req->{body} ? 'POST' : 'GET');
    my $path = $self->_path_of($req);
    my $headers = $self->_headers_of($req, 'persistent');
    my $log_file = "$self->{prefix}/logs/params.log";
    my $log_before = -s $log_file || 0;
    my $err_before = -s "$self->{prefix}/logs/error.log" || 0;
    my $site = $self->{site};
    my $daemon_log_before = $site ? (-s $site->{log} || 0) : 0;
    my %r = (via => 'http');
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}", Proto => 'tcp', Timeout => 10);
    if (!$s) {
        $r{error} = "cannot connect to nginx: $!";
        return \%r;
    }
    binmode $s;
    my $local_port = $s->sockport;
    # The request's HTTP_HOST is the Host header (nginx allows one).
    my ($host) = map { $_->[1] } grep { $_->[0] eq 'Host' } @$headers;
    my $msg = "$method $path HTTP/1.1\r\nHost: " . (defined $host ? $host : "127.0.0.1:$self->{port}")
        . "\r\nConnection: close\r\n";
    $msg .= "$_->[0]: $_->[1]\r\n" for grep { $_->[0] ne 'Host' } @$headers;
    if (defined $req->{body}) {
        $msg .= 'Content-Type: ' . (defined $req->{content_type} ? $req->{content_type} : 'application/x-www-form-urlencoded') . "\r\n";
        $msg .= 'Content-Length: ' . length($req->{body}) . "\r\n";
    }
    $msg .= "\r\n" . (defined $req->{body} ? $req->{body} : '');
    my $off = 0;
    while ($off < length $msg) {
        my $n = syswrite $s, $msg, 65536, $off;
        if (!defined $n) { $r{error} = "write to nginx: $!"; return \%r }
        $off += $n;
    }
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $timeout = $req->{timeout} || ($self->{site} ? $self->{site}{timeout} : 60);
    my $deadline = time + $timeout * Test::FCGI::Spawn::timeout_scale();
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $r{error} = "nginx response timed out after $timeout s"; last }
        next unless $sel->can_read($left);
        my $n = sysread $s, $raw, 65536, length $raw;
        last unless $n;
    }
    close $s;
    $r{raw} = $raw;
    if ($raw =~ m{\AHTTP/\d\.\d (\d{3})[^\n]*\r\n(.*?)\r\n\r\n(.*)\z}s) {
        my ($status, $head, $body) = ($1, $2, $3);
        my @h = map { /^([^:\s]+):[ \t]*(.*?)\s*$/ ? [ lc $1, $2 ] : () } split /\r\n/, $head;
        if (grep { $_->[0] eq 'transfer-encoding' && $_->[1] =~ /chunked/i } @h) {
            my $plain = '';
            while ($body =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
                my $len = hex $1;
                last if $len == 0;
                $plain .= substr $body, 0, $len, '';
                $body =~ s/\A\r\n//;
            }
            $body = $plain;
        }
        @r{qw(status headers body)} = ($status, \@h, $body);
    }
    else {
        $r{error} ||= 'no HTTP response from nginx: ' . Test::FCGI::Spawn::_visible(substr $raw, 0, 200);
    }
    # The access log line of this request (matched by client port) gives
    # the params the script got; nginx writes it as the request ends.
    my $params;
    Test::FCGI::Spawn::wait_for(sub {
        for my $line (split /\n/, Test::FCGI::Spawn::slurp($log_file, $log_before)) {
            my $p = eval { JSON::PP->new->decode($line) } or next;
            next unless ($p->{REMOTE_PORT} // '') eq $local_port;
            $params = $p;
            return 1;
        }
        return 0;
    }, 5, 0.02);
    if (!$params) {
        $r{error} ||= 'nginx did not log the params of the request';
        return \%r;
    }
    for my $pr (@{ $self->{table} }) {
        delete $params->{ $pr->[0] } if $pr->[2] && $params->{ $pr->[0] } eq '';
    }
    # Headers nginx passes on as HTTP_* besides the HTTP_HOST param (the
    # carriers of other params are kept back).
    my @sent = (['Connection', 'close'], grep { !defined $_->[2] } @$headers);
    push @sent, ['Content-Type', defined $req->{content_type} ? $req->{content_type} : 'application/x-www-form-urlencoded'],
        ['Content-Length', length $req->{body}]
        if defined $req->{body};
    for my $h (@sent) {
        (my $name = 'HTTP_' . uc $h->[0]) =~ s/-/_/g;
        $params->{$name} = $h->[1] unless exists $params->{$name};
    }
    $r{params} = $params;
    $r{error_log} = Test::FCGI::Spawn::slurp("$self->{prefix}/logs/error.log", $err_before);
    $r{bad_header} = ($r{status} // 0) == 502
        && $r{error_log} =~ /upstream (?:sent invalid header|prematurely closed connection while reading response header)/ ? 1 : 0;
    if ($site) {
        $site->_attach_log(\%r, $daemon_log_before, $params->{SCRIPT_FILENAME});
    }
    return \%r;
}

# The oracle for a request sent through nginx: the same params nginx sent.
sub compare {
    my ($self, $req) = @_;
    return Test::FCGI::Spawn::_compare_runs($self, $req, 'http', sub { $self->_one_run($_[0]) });
}

# One run of a request through nginx, and its oracle.
sub _one_run {
    my ($self, $req) = @_;
    my $p = $self->request($req);
    my $c;
    if ($p->{params}) {
        my %params = %{ $p->{params} };
        # What the cgi side must get instead of the persistent side's own.
        for my $h (@{ $self->_headers_of($req, 'cgi') }) {
            (my $name = 'HTTP_' . uc $h->[0]) =~ s/-/_/g;
            $params{ defined $h->[2] ? $h->[2] : $name } = $h->[1];
        }
        my $site = $self->{site};
        $c = $site
            ? $site->run_cgi_for($req, params => \%params)
            : Test::FCGI::Spawn::run_cgi($req, params => \%params);
    }
    else {
        $c = { error => 'not run: the persistent side failed', raw => '', stderr => '' };
    }
    return ($p, $c);
}

sub same_as_cgi {
    my ($self, $req, $name) = @_;
    return Test::FCGI::Spawn::_assert($self->compare($req), $req, $name);
}

package Test::FCGI::Spawn;

1;

__END__

=head1 NAME

Test::FCGI::Spawn - check that your CGI scripts give the same bytes under fcgi-spawn as under plain CGI

=head1 SYNOPSIS

    # t/site.t
    use strict;
    use warnings;
    use Test::More;
    use Test::FCGI::Spawn;

    my $site = Test::FCGI::Spawn->start(
        roots     => ['/srv/www/cgi-bin'],
        preload   => ['CGI'],
        isolation => 'perlrun',
        env       => { SITE_CONFIG => '/srv/www/site.conf' },
    );

    # A warm worker: every page after another page.
    for my $page ('index.pl', 'news.pl?id=3', 'search.pl?q=perl', 'index.pl') {
        my ($file, $query) = split /\?/, $page, 2;
        $site->same_as_cgi({ script => "/srv/www/cgi-bin/$file", query => $query });
    }
    $site->same_as_cgi({
        name   => 'login form posted',
        script => '/srv/www/cgi-bin/login.pl',
        body   => 'user=ann&password=secret',
        mask   => [ qr/session=\w+/ ],
    });

    # The same through a real nginx in front of the daemon.
    my $nginx = $site->start_nginx;
    $nginx->same_as_cgi({ script => '/srv/www/cgi-bin/index.pl' });
    $nginx->stop;

    $site->stop;
    done_testing;

=head1 DESCRIPTION

fcgi-spawn runs CGI scripts persistently: one process serves many requests.
A script that works under plain CGI can behave differently on a worker that
has already served other scripts. This module makes that a test: it starts
the daemon on a temporary UNIX socket for your roots and preloads, sends it
requests with C<fcgi-spawn request>, runs the very same request as a plain
CGI process, and compares the two responses byte for byte.

Each request runs twice in a row (C<warm_runs>) on the daemon's one worker,
each run compared with its own plain CGI run. Most scripts that break when
persistent give the right page on a fresh worker and the wrong one from
their second request on (a module setting one request switched, a
C<while (CGI::Fast-E<gt>new)> loop that ran once, a global that keeps
counting); a single run on a fresh worker would pass them. A failure says
which run differed, and "different on a warm worker (run 2)" when the
first run was right.

The plain CGI run (the I<oracle>) is what a CGI server does: the script's
directory as working directory, C<%ENV> = the daemon's clean base
environment (the variables C<--pass-env> lets through, by default C<PATH
LANG LC_ALL LC_CTYPE TZ TMPDIR PERL5LIB>, plus the C<env> pairs) and the CGI
params of the request, the body on stdin, stdout read until every process
holding it closed it. An executable script with a C<#!> line is exec'd
directly, so that line (C<-w>, C<-T>) applies; any other through C<perl>.

Nothing is left running: C<stop> ends the daemon by its pid, and C<DESTROY>
and an C<END> block end anything a dying test forgot.

=head1 METHODS

=head2 Test::FCGI::Spawn->start(%options)

Starts C<fcgi-spawn run --listen TEMP/fcgi.sock --workers 1 ...> and waits
until it is ready. Options:

=over

=item roots => [DIR, ...]

C<--root> for each.

=item preload => [MODULE, ...], preload_script => [FILE, ...]

C<--preload>, C<--preload-script>.

=item isolation => 'perlrun' | 'registry' | 'fork'

=item workers => N

Default 1: one warm worker serves every request, which is what finds
leaks between requests.

=item warm_runs => N

How many times C<compare> and C<same_as_cgi> run each request, one run
after the other (default 2; 1 runs it once, as before this option). With
one worker, run 1 warms it (unless earlier requests did) and the later
runs show what a run leaves behind.

=item env => { NAME => VALUE }

C<--env> for the daemon, and the same variables for the plain CGI run.

=item pass_env => [NAME, ...]

C<--pass-env>; the plain CGI run gets the same variables.

=item args => [...]

More C<fcgi-spawn run> flags.

=item binary => PATH

Default: C<$ENV{FCGI_SPAWN_BIN}>, else C<fcgi-spawn> in C<PATH>.

=item timeout => SECONDS

Per request, both sides (default 60).

=item start_timeout => SECONDS

How long the daemon may take to log "ready" and take a connection
(default 20).

=item dir => DIR

Where the socket, the daemon's log and the requests' files go (default: a
new temp directory, removed at exit).

=item listen => PATH | HOST:PORT

The listening socket (default C<DIR/fcgi.sock>); C<127.0.0.1:PORT>, with a
port from C<free_port>, for a site served over TCP.

=item launcher => [PROGRAM, ARG, ...]

Run the daemon under a program that makes the listening socket and passes
it on, as a site run by C<spawn-fcgi -n -s PATH --> or
C<systemd-socket-activate -l PATH> is; the daemon then gets no
C<--listen>, and C<listen> says where the launcher listens. Under
C<systemd-socket-activate>, which starts the daemon on the first
connection, C<start> makes that connection.

=item daemon_env => { NAME => VALUE }

Set in the daemon process's own environment (C<TMPDIR>, say), not
C<--env>: the scripts see them only through C<pass_env>.

=back

=head2 $site->request(\%request)

Sends the request and returns a hash: C<raw> (the CGI response bytes),
C<status>, C<headers> (C<[[lc name, value], ...]>), C<body>, C<stderr>,
C<params> (the CGI params sent), C<log> (what the daemon logged meanwhile),
C<no_output> (true when the response is the daemon's own 500 for a script
that printed nothing), C<error> (when the request itself failed).

=head2 Test::FCGI::Spawn::run_cgi(\%request, env => \%base_env)

The oracle: the request as a plain CGI process. Returns the same kind of
hash (with C<exit>, the exit code). C<< $site->run_cgi_for(\%request) >> does
the same with the site's base environment.

=head2 $site->same_as_cgi(\%request, $test_name)

A L<Test::More> assertion (one per request, whatever C<warm_runs>): sends
the request C<warm_runs> times and runs it as plain CGI as many times, each
run a full request on both sides (cookie jars and C<map_ids> carry on from
run to run as from request to request), and passes when every persistent
response equals its plain CGI one after the request's masks. On failure
the diagnostics say which runs differ and, when the first of them is not
run 1, that the difference shows on a warm worker; then the unified diff of
the first run that differs, the plain CGI stderr and the daemon's log
lines. A script that prints nothing counts as equal to the daemon's 500
page for it (a CGI server answers 500 too). A run whose request fails (a
timeout) ends the series. C<< $site->compare(\%request) >> returns the
comparison without asserting: C<same>, C<diff>, both texts and both
responses of the first run that differs (else of the last run), C<run>
(its number), C<warm_runs>, and C<results> (every run's comparison, in
order).

=head2 $site->start_nginx(root => '/', params => [NAME, ...], scripts => [PATH, ...], warm_runs => N)

Starts nginx on a free 127.0.0.1 port in front of the daemon (upstream
keepalive, C<fastcgi_keep_conn on>). The document root defaults to C</>, so
a script's URL path is its file path. The returned object has C<request>,
C<compare> and C<same_as_cgi> like the site (C<warm_runs> runs each, by
default the site's), C<url>, C<port>,
C<error_log_text> and C<stop>. The plain CGI run gets the exact params
nginx sent (read back from an access log); the comparison covers the status,
the script's headers (sorted by name; nginx's own C<Server>, C<Date>,
C<Connection>, C<Transfer-Encoding> left out) and the body. C<HTTP_*>
params are sent as request headers; any other param a request sets must be
named in C<params> (nginx then takes it from a request header
C<X-Cgi-Param-NAME>, which the script does not see). C<can_send($request)>
says whether a request fits. URLs ending in C<.pl> or C<.cgi> (or with a path
info after that) go to the daemon, and so do the C<scripts> given (files
installed without an extension).

=head2 $site->stop(signal => 'TERM', grace => 15)

Sends the signal to the daemon's pid (C<< signal => 0 >>: none, for an
exit caused elsewhere), waits (KILL after C<grace> seconds), and returns
its wait status (-1 when it had to be killed). Workers still running 3 s
after their master is gone are a daemon bug: a diagnostic names them and
they are killed. A second C<stop> returns the same status.

=head2 $site->crashes, $site->log_text, $site->worker_pids, $site->warm_runs, $site->alive

Log lines of workers killed by a signal; the daemon's whole log (its log
file, then anything on its stderr); the pids of its workers; the runs per
request; whether the daemon still runs. Also C<pid>, C<socket>, C<dir>,
C<log_file>, C<argv> (the command it was started with).

=head1 HELPERS

Functions for what a site's tests do around the daemon, exported on
request (C<use Test::FCGI::Spawn qw(slurp wait_for)>). Every wait is
multiplied by C<FCGI_SPAWN_TIMEOUT_SCALE>.

=over

=item parse_cgi($raw), cgi_header($parsed, $name)

A raw CGI response as C<< { status, head, headers => [[lc name, value],
...], body } >>, the status as a web server takes it (C<Status:>, else 302
with C<Location:>, else 200; undef, with the whole response as body, when
there is no complete header block); the first value of a header.

=item multipart_body(NAME => VALUE, NAME => [FILENAME, CONTENT, TYPE], ...)

Returns C<($body, $content_type)> of a C<multipart/form-data> upload, for a
request's C<body> and C<content_type>.

=item slurp($file, $from), spew($file, $content, $mode)

A file's bytes ('' when it cannot be read; from byte C<$from> on, to read
what a log gained). Write a file; a C<.pl> or C<.cgi> becomes executable
(0755) unless C<$mode> says otherwise.

=item wait_for(sub { ... }, $seconds, $every)

Calls the sub every C<$every> seconds (default 0.05) until it returns true
or C<$seconds> (default 10) pass; returns its last value.

=item free_port, connect_to($listen)

A free TCP port on 127.0.0.1; a connection to a UNIX socket path or
C<HOST:PORT> (undef when refused).

=item start_process(argv => [...], stdout => FILE, stderr => FILE, env => {...}, ready => sub { ... }, timeout => 20, name => NAME, log => sub { ... })

Starts a program (stdin C</dev/null>, output appended to the files) and
returns its pid. With C<ready>, waits until it returns true and croaks,
with the command and C<log> (default: the stdout file), when the program
exits first or C<timeout> seconds pass. A process still running at exit
is killed.

=item stop_process($pid, $signal, $grace), kill_leftovers(\@pids, $grace, $whose)

Signals a started process (0: none), waits up to C<$grace> seconds (then
KILL, with a diagnostic) and returns its wait status (-1 when killed, undef
when it was not ours to wait for). Of C<@pids>, those still running after
C<$grace> seconds get a diagnostic and KILL; returns them.

=item worker_pids($site_or_pid), descendants($pid), running($pid), rss_kb($pid)

A daemon's worker pids (their number in scalar context); every process
below a pid; whether a process runs (a zombie does not); its resident
memory in kB. From F</proc>.

=item open_files($pid), files_left_open($pid, $at_start)

The files and directories a process holds open, as a hash of paths
(F</proc> and F</dev/null> left out); and, given C<open_files> of a
worker taken when it started, what it holds now and did not then: what
the requests since left open, which a CGI process's exit would have
closed. The DATA handle of a compiled script (a file with C<__END__> or
C<__DATA__>) is not counted; what is still open is looked at again for
up to 2 s, since the response can reach the client before the worker has
put everything back.

    my ($worker) = $site->worker_pids;
    my $at_start = open_files($worker);
    $site->same_as_cgi($_) for @requests;
    is join(' ', files_left_open($worker, $at_start)), '', 'nothing left open';

=item worker_started($pid [, $timeout])

Waits until a worker is past its start (its process title no longer says
C<starting>; up to C<$timeout> seconds, 10 by default). A worker opens
descriptors of its own between its fork and its first request: take
C<open_files> or C<socket_count> to compare with only after this.

=item socket_count($pid)

How many sockets a process holds open: a worker that serves every
request on a new connection holds as many between requests as when it
started (its listening socket and its channels to the master), unless a
request left a connection of its own open. The socket a C<fork>
isolation worker keeps to its spare child (the next request's process,
forked ahead) is not counted.

=back

=head1 REQUESTS

A request is a hash:

    {
      name         => 'news page',             # label in test names
      script       => '/srv/www/cgi-bin/news.pl',  # SCRIPT_FILENAME, absolute
      method       => 'GET',                   # default GET, POST with a body
      query        => 'id=3',                  # QUERY_STRING
      path_info    => '/2024/05',              # PATH_INFO
      script_name  => '/cgi-bin/news.pl',      # SCRIPT_NAME (default: / and the file name)
      params       => { HTTP_COOKIE => 'a=b', HTTP_ACCEPT_ENCODING => 'gzip' },
      body         => 'a=1&b=2',               # on stdin
      content_type => 'application/x-www-form-urlencoded',
      side_params  => { persistent => {...}, cgi => {...} },  # per side
      jar          => 'ann',                   # cookie jar, one per name and side
      map_ids      => [ qr/session=(\w+)/ ],   # ids numbered by first appearance, per side
      mask         => [ qr/\d{10}/ ],          # replaced by <masked> on both sides
      sort_lines   => 'why',                   # compare the body as sorted lines
      sort_lines_match => qr/^<tr>/,           # ... only runs of lines matching this
      gunzip       => 1,                       # compare gzip bodies decompressed
      timeout      => 60,
    }

Both sides get the params C<fcgi-spawn request> would send
(C<GATEWAY_INTERFACE SERVER_PROTOCOL SERVER_SOFTWARE SERVER_NAME SERVER_PORT
REMOTE_ADDR REQUEST_METHOD SCRIPT_FILENAME SCRIPT_NAME REQUEST_URI
QUERY_STRING CONTENT_LENGTH>, C<CONTENT_TYPE> with a body), then C<params>.

A C<jar> keeps the cookies each side's responses set (C<Set-Cookie>; an
empty value, C<Max-Age=0> or an expiry in 1970-2009 removes one) and sends
them as C<HTTP_COOKIE> with the next request naming the same jar, unless the
request sets C<HTTP_COOKIE> itself; the two sides' jars never mix, so each
side keeps its own session. C<map_ids> replaces each match (or its first
capture group) with C<< <id N> >>, numbered by first appearance on that side
over all the comparisons of the site (or of the nginx): two random session
ids playing the same role compare equal, an id where the other side has
another one does not. Order of the transformations: gunzip, C<map_ids>,
C<mask>, C<sort_lines>.

Mask only what is volatile by nature (times, process ids, random session
ids); use C<sort_lines> only for output whose line order depends on Perl's
per-process hash order, and say why in its value.

=head1 INSTALLATION

The module is in the fcgi-spawn repository (C<perl/Test/FCGI/Spawn.pm>),
not in the binary. Run your tests with C<prove -I /path/to/fcgi-spawn/perl
t/>, or copy it where perl looks for modules:

    install -D -m 0644 perl/Test/FCGI/Spawn.pm \
        "$(perl -MConfig -e 'print $Config{installsitelib}')/Test/FCGI/Spawn.pm"

It needs the C<fcgi-spawn> binary (see C<binary> above) and perl's core
modules; with L<Algorithm::Diff> installed a failure's diff shows each
changed line, without it everything from the first to the last one.

=head1 ENVIRONMENT

C<FCGI_SPAWN_BIN> (the daemon binary), C<FCGI_SPAWN_NGINX> (the nginx
binary), C<FCGI_SPAWN_WRAP> (a command the daemon runs under, split on
white space: C<valgrind --log-file=/tmp/vg.%p ...>; the client runs
plain), C<FCGI_SPAWN_TIMEOUT_SCALE> (every wait of the module, for the
daemon's start, a response, a stop, multiplied by this number: C<20> under
valgrind).

=head1 SEE ALSO

C<fcgi-spawn compare> runs the same check for one request from the command
line.

=cut
