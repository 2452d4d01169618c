package FcgiSpawn::Test;

=head1 NAME

FcgiSpawn::Test - start the real fcgi-spawn daemon (and a real nginx) for t/*.t

=head1 SYNOPSIS

    use FcgiSpawn::Test;
    my $d = start_daemon(workers => 1);
    my ($out, $err, $rc) = fcgi_request($d, 'hello.pl', query => 'name=x');
    my $r = parse_cgi($out);
    is $r->{status}, 200;
    my $ngx = start_nginx($d);
    my $res = http_get($ngx, '/hello.pl');
    $ngx->stop;
    $d->stop;    # TERM by pid, waitpid, asserts exit status 0

=head1 DESCRIPTION

Every test file starts its own daemon on a socket inside a private temp
directory and stops it by PID; nothing is ever left running (DESTROY and an
END block kill what a dying test forgot). The client side is the product's
own C<fcgi-spawn request>; the only hand-made FastCGI bytes come from the tiny
record encoder below, which exists because malformed input, keep-conn
sequences and management records cannot be produced by the real client.

Environment: C<FCGI_SPAWN_BIN> overrides the daemon binary,
C<FCGI_SPAWN_NGINX> the nginx binary, C<FCGI_SPAWN_EXTRA_ARGS> adds
whitespace-separated flags to every C<fcgi-spawn run>; C<FCGI_SPAWN_WRAP>
and C<FCGI_SPAWN_TIMEOUT_SCALE> are L<Test::FCGI::Spawn>'s (a command the
daemon runs under, every wait multiplied: script/memcheck).

=cut

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    start_daemon start_nginx
    fcgi_request parse_cgi
    http_get http_post multipart_body wrk
    raw_connect fcgi_record fcgi_begin fcgi_nv fcgi_request_bytes
    read_records collect_response
    scripts_dir script_path bin_path wait_for worker_pids running rss_kb
    slurp spew
    FCGI_BEGIN_REQUEST FCGI_ABORT_REQUEST FCGI_END_REQUEST FCGI_PARAMS
    FCGI_STDIN FCGI_STDOUT FCGI_STDERR FCGI_DATA FCGI_GET_VALUES
    FCGI_GET_VALUES_RESULT FCGI_UNKNOWN_TYPE FCGI_KEEP_CONN
    FCGI_RESPONDER FCGI_AUTHORIZER FCGI_FILTER
    FCGI_REQUEST_COMPLETE FCGI_CANT_MPX_CONN FCGI_OVERLOADED FCGI_UNKNOWN_ROLE
);

use constant {
    FCGI_BEGIN_REQUEST     => 1,
    FCGI_ABORT_REQUEST     => 2,
    FCGI_END_REQUEST       => 3,
    FCGI_PARAMS            => 4,
    FCGI_STDIN             => 5,
    FCGI_STDOUT            => 6,
    FCGI_STDERR            => 7,
    FCGI_DATA              => 8,
    FCGI_GET_VALUES        => 9,
    FCGI_GET_VALUES_RESULT => 10,
    FCGI_UNKNOWN_TYPE      => 11,
    FCGI_KEEP_CONN         => 1,
    FCGI_RESPONDER         => 1,
    FCGI_AUTHORIZER        => 2,
    FCGI_FILTER            => 3,
    FCGI_REQUEST_COMPLETE  => 0,
    FCGI_CANT_MPX_CONN     => 1,
    FCGI_OVERLOADED        => 2,
    FCGI_UNKNOWN_ROLE      => 3,
};

my $TOP;
BEGIN { $TOP = abs_path(File::Spec->catdir(dirname(__FILE__), '..', '..', '..')) }
use lib "$TOP/perl";
use Test::FCGI::Spawn ();
my %LIVE;    # pid => description, for the END safety net

sub scripts_dir { return "$TOP/t/scripts" }

sub script_path {
    my ($name) = @_;
    return $name if $name =~ m{^/};
    return scripts_dir() . "/$name";
}

sub bin_path {
    my $bin = $ENV{FCGI_SPAWN_BIN} || "$TOP/target/release/fcgi-spawn";
    croak "fcgi-spawn binary not found or not executable: $bin (run cargo build --release or set FCGI_SPAWN_BIN)"
        unless -x $bin;
    return $bin;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or return '';
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

# Write $content to $file; a script (.pl, .cgi) is made executable, as a
# CGI script is (the daemon, like CGI, refuses one that is not), unless
# $mode says otherwise.
sub spew {
    my ($file, $content, $mode) = @_;
    open my $fh, '>:raw', $file or croak "write $file: $!";
    print {$fh} $content;
    close $fh or croak "close $file: $!";
    $mode //= 0755 if $file =~ /\.(?:pl|cgi)\z/;
    chmod $mode, $file if defined $mode;
    return $file;
}

# Poll $cond every 50 ms until it returns true or $timeout seconds pass.
sub wait_for {
    my ($cond, $timeout) = @_;
    $timeout ||= 10;
    my $deadline = time + $timeout * Test::FCGI::Spawn::timeout_scale();
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }
    return $cond->();
}

sub _spawn {
    my (%a) = @_;    # argv, stdout, stderr, env (hashref: set in the child)
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        @ENV{ keys %{ $a{env} } } = values %{ $a{env} } if $a{env};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $a{stdout} or POSIX::_exit(126);
        open STDERR, '>>', $a{stderr} or POSIX::_exit(126);
        exec { $a{argv}[0] } @{ $a{argv} } or POSIX::_exit(127);
    }
    $LIVE{$pid} = $a{argv}[0];
    return $pid;
}

# TERM (or $sig) the pid, wait up to $grace seconds, then KILL.
# Returns the raw wait status, or undef when the pid was not ours any more.
sub _terminate {
    my ($pid, $sig, $grace) = @_;
    return undef unless $pid && $LIVE{$pid};
    $sig ||= "TERM";
    kill $sig, $pid unless $sig eq "NONE";
    my $deadline = time + ($grace || 10) * Test::FCGI::Spawn::timeout_scale();
    my $status;
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid) { $status = $?; last }
        if ($r < 0) { last }
        if (time > $deadline) {
            Test::More::diag("pid $pid ($LIVE{$pid}) did not stop within ${grace}s of $sig: sending KILL");
            kill 'KILL', $pid;
            waitpid $pid, 0;
            $status = $?;
            $status = -1 if $status == 9;    # make "killed" distinguishable from any exit code
            last;
        }
        sleep 0.05;
    }
    delete $LIVE{$pid};
    return $status;
}

END {
    my $keep = $?;
    for my $pid (keys %LIVE) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    $? = $keep;
}

sub _free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or croak "cannot bind a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

=head2 start_daemon(%opts)

Options: C<workers> (default 2), C<root> (dir or arrayref; default
t/scripts), C<ext>, C<preload> (arrayref), C<preload_script> (arrayref),
C<isolation>, C<max_requests>, C<socket_mode>, C<tcp> (listen on
127.0.0.1:free port instead of a UNIX socket), C<args> (more flags),
C<timeout> (seconds to wait for "ready", default 10), C<listen> (a UNIX
socket path instead of one in the daemon's temp directory: a supervisor
restarting a daemon on the same path), C<env> (hashref of environment
variables for the daemon only, e.g. C<TMPDIR>), C<inherit> (the
listening socket is created by another program and inherited:
C<spawn-fcgi> passes it on fd 0, C<spawn-fcgi-tcp> the same on
127.0.0.1:free port, C<systemd> is C<systemd-socket-activate>, which passes
it as C<LISTEN_FDS> and starts the daemon on the first connection). Dies with
the log if the daemon does not get ready.

=cut

sub start_daemon {
    my (%o) = @_;
    my $dir = tempdir('fcgi-spawn-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless { dir => $dir, log => "$dir/daemon.log", stderr => "$dir/daemon.stderr" },
        'FcgiSpawn::Test::Daemon';
    $self->{listen} = $o{listen} ? $o{listen} : $o{tcp} || ($o{inherit} || '') eq 'spawn-fcgi-tcp'
        ? '127.0.0.1:' . _free_port() : "$dir/fcgi.sock";
    my @roots = ref $o{root} ? @{ $o{root} } : ($o{root} || scripts_dir());
    my @wrap;
    if (my $how = $o{inherit}) {
        my ($port) = $self->{listen} =~ /:(\d+)$/;
        @wrap = $how eq 'spawn-fcgi'     ? ('spawn-fcgi', '-n', '-s', $self->{listen}, '--')
              : $how eq 'spawn-fcgi-tcp' ? ('spawn-fcgi', '-n', '-a', '127.0.0.1', '-p', $port, '--')
              : $how eq 'systemd'        ? ('systemd-socket-activate', '-l', $self->{listen})
              : croak "unknown inherit => '$how'";
        my ($prog) = grep { -x "$_/$wrap[0]" } split /:/, "$ENV{PATH}:/usr/bin:/usr/sbin";
        croak "$wrap[0] not found (script/install-deps installs it)" unless $prog;
        $wrap[0] = "$prog/$wrap[0]";
    }
    my @argv = (@wrap, Test::FCGI::Spawn::daemon_prefix(), bin_path(), 'run', ($o{inherit} ? () : ('--listen', $self->{listen})),
        '--log', $self->{log}, '--workers', (defined $o{workers} ? $o{workers} : 2));
    push @argv, map { ('--root', $_) } @roots;
    push @argv, '--ext', $o{ext} if defined $o{ext};
    push @argv, map { ('--preload', $_) } @{ $o{preload} || [] };
    push @argv, map { ('--preload-script', $_) } @{ $o{preload_script} || [] };
    push @argv, '--isolation', $o{isolation} if defined $o{isolation};
    push @argv, '--max-requests', $o{max_requests} if defined $o{max_requests};
    push @argv, '--socket-mode', $o{socket_mode} if defined $o{socket_mode};
    push @argv, '--pid-file', $o{pid_file} if defined $o{pid_file};
    push @argv, @{ $o{args} || [] };
    push @argv, split ' ', $ENV{FCGI_SPAWN_EXTRA_ARGS} if $ENV{FCGI_SPAWN_EXTRA_ARGS};
    $self->{argv} = \@argv;
    $self->{pid} = _spawn(argv => \@argv, stdout => $self->{stderr}, stderr => $self->{stderr}, env => $o{env});

    my $poked;
    my $ready = wait_for(sub {
        return 'dead' if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        # systemd-socket-activate starts the daemon on the first connection.
        if (($o{inherit} || '') eq 'systemd' && !$poked && -S $self->{listen}) {
            $poked = _connect_listen($self->{listen});
        }
        return 0 unless $self->log_text =~ /ready/i;
        return $self->_connectable ? 'ready' : 0;
    }, $o{timeout} || 10);
    if (!$ready || $ready ne 'ready') {
        my $why = !$ready ? 'no "ready" line / socket not connectable within timeout'
                : "exited with status $? before getting ready";
        delete $LIVE{ $self->{pid} } if $ready;
        _terminate($self->{pid}, 'KILL', 2);
        croak "fcgi-spawn did not start ($why)\ncommand: @argv\nlog:\n" . $self->log_text;
    }
    return $self;
}

sub _connect_listen {
    my ($listen) = @_;
    return $listen =~ m{/}
        ? IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $listen)
        : IO::Socket::INET->new(PeerAddr => $listen, Proto => 'tcp', Timeout => 5);
}

package FcgiSpawn::Test::Daemon;

use strict;
use warnings;
use POSIX qw(WNOHANG);

sub dir     { $_[0]{dir} }
sub socket  { $_[0]{listen} }
sub listen  { $_[0]{listen} }
sub pid     { $_[0]{pid} }
sub argv    { @{ $_[0]{argv} } }
sub log_file { $_[0]{log} }

# Everything the daemon wrote: its --log file, then whatever reached its
# stderr (should be nothing when --log is given).
sub log_text {
    my ($self) = @_;
    return FcgiSpawn::Test::slurp($self->{log}) . FcgiSpawn::Test::slurp($self->{stderr});
}

sub log_lines { return split /\n/, $_[0]->log_text }

sub _connectable {
    my ($self) = @_;
    my $s = FcgiSpawn::Test::_connect_listen($self->{listen}) or return 0;
    close $s;
    return 1;
}

sub alive {
    my ($self) = @_;
    return 0 unless $LIVE{ $self->{pid} };
    return kill(0, $self->{pid}) && waitpid($self->{pid}, WNOHANG) == 0;
}

# Send a signal, wait for the exit, return the wait status (no assertion).
sub terminate {
    my ($self, $sig, $grace) = @_;
    my @workers = FcgiSpawn::Test::worker_pids($self);
    my $st = FcgiSpawn::Test::_terminate($self->{pid}, $sig || "TERM", $grace || 10);
    $self->_reap_orphans(@workers);
    $self->{status} = $st;
    return $st;
}

# Wait for an exit caused elsewhere (KILL after $grace s); returns the wait status.
sub wait_exit {
    my ($self, $grace) = @_;
    $self->{stopped} = 1;
    my @workers = FcgiSpawn::Test::worker_pids($self);
    $self->{status} = FcgiSpawn::Test::_terminate($self->{pid}, "NONE", $grace || 10);
    $self->_reap_orphans(@workers);
    return $self->{status};
}

# Workers still alive after their master is gone are a daemon bug (they must
# exit with it); say so and KILL them, so no test leaves processes behind.
sub _reap_orphans {
    my ($self, @workers) = @_;
    my @left = grep { FcgiSpawn::Test::running($_) } @workers;
    FcgiSpawn::Test::wait_for(sub { @left = grep { FcgiSpawn::Test::running($_) } @left; !@left }, 2) if @left;
    return unless @left;
    Test::More::diag("workers @left outlived master $self->{pid}: sending KILL");
    kill "KILL", @left;
}

# Graceful stop by PID; asserts the daemon exited with status 0.
sub stop {
    my ($self, $sig) = @_;
    $sig ||= 'TERM';
    return if $self->{stopped}++;
    my $st = $self->terminate($sig, 15);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is($st, 0, "daemon (pid $self->{pid}) exits 0 on $sig")
        or Test::More::diag("log:\n" . $self->log_text);
    return $st;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    return if $self->{stopped}++;
    my @workers = FcgiSpawn::Test::worker_pids($self);
    FcgiSpawn::Test::_terminate($self->{pid}, "TERM", 5);
    $self->_reap_orphans(@workers);
}

package FcgiSpawn::Test;

=head2 fcgi_request($daemon, $script, %opts)

Runs C<fcgi-spawn request> against the daemon. C<$script> is a name in
t/scripts or an absolute path. Options: C<method>, C<query>, C<params>
(hashref or arrayref of NAME => VALUE), C<data> (a string; sent as the
body), C<timeout> (default 60). Returns (stdout, stderr, exit code); in
scalar context just stdout.

=cut

sub fcgi_request {
    my ($d, $script, %o) = @_;
    my $dir = $d->dir;
    my $n = ++$d->{nreq};
    my ($out, $err) = ("$dir/req$n.out", "$dir/req$n.err");
    my @argv = (bin_path(), 'request', '--connect', $d->socket);
    push @argv, '--method', $o{method} if defined $o{method};
    my @params = ref $o{params} eq 'HASH' ? %{ $o{params} } : @{ $o{params} || [] };
    while (my ($k, $v) = splice @params, 0, 2) {
        push @argv, '--param', "$k=$v";
    }
    if (defined $o{data}) {
        spew("$dir/req$n.in", $o{data});
        push @argv, '--data', "$dir/req$n.in";
    }
    push @argv, script_path($script);
    push @argv, $o{query} if defined $o{query};
    my $pid = _spawn(argv => \@argv, stdout => $out, stderr => $err);
    my $deadline = time + ($o{timeout} || 60) * Test::FCGI::Spawn::timeout_scale();
    my $status;
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid) { $status = $?; last }
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            $status = -1;
            spew($err, slurp($err) . "\n[test harness: fcgi-spawn request timed out]\n");
            last;
        }
        sleep 0.01;
    }
    delete $LIVE{$pid};
    my $rc = $status == -1 ? -1 : ($status & 127) ? 128 + ($status & 127) : $status >> 8;
    my @res = (slurp($out), slurp($err), $rc);
    unlink $out, $err, "$dir/req$n.in";
    return wantarray ? @res : $res[0];
}

=head2 parse_cgi($raw)

Splits a raw CGI response into C<< { status, headers => {lc name => [values]},
header => sub(name), body, head } >>. The status is taken as nginx would:
C<Status:> header, else 302 with C<Location:>, else 200.

=cut

sub parse_cgi {
    my ($raw) = @_;
    $raw = '' unless defined $raw;
    my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
    $head = '' unless defined $head;
    my %h;
    for my $line (split /\r?\n/, $head) {
        next unless $line =~ /^([^:\s]+):\s*(.*?)\s*$/;
        push @{ $h{ lc $1 } }, $2;
    }
    my $status = 200;
    if ($h{status}) { ($status) = $h{status}[0] =~ /^(\d+)/ }
    elsif ($h{location}) { $status = 302 }
    $status = undef unless length $head;
    return {
        status  => $status,
        head    => $head,
        headers => \%h,
        body    => defined $body ? $body : '',
        header  => sub { my $v = $h{ lc $_[0] }; $v ? $v->[0] : undef },
    };
}

=head2 start_nginx($daemon, %opts)

A real nginx on 127.0.0.1:<free port> in front of the daemon (or of the
socket in C<pass>), document root t/scripts (C<root> option), C<.pl>/C<.cgi>
passed through an upstream with keepalive and C<fastcgi_keep_conn on>, as a
production site would (C<< keep_conn => 0 >>: no upstream keepalive, a new
FastCGI connection per request). The nginx setup is the shipped
L<Test::FCGI::Spawn::Nginx>'s; returns its object (C<url>, C<port>,
C<error_log_text>, C<stop>).

=cut

sub start_nginx {
    my ($d, %o) = @_;
    return Test::FCGI::Spawn::Nginx->start(
        backend => $o{pass} || $d->socket,
        root    => $o{root} || scripts_dir(),
        dir     => $d->dir,
        (defined $o{keep_conn} ? (keep_conn => $o{keep_conn}) : ()),
    );
}

package FcgiSpawn::Test;

sub _http { HTTP::Tiny->new(max_redirect => 0, timeout => 60, keep_alive => 0) }

# http_get($nginx, '/path?query', {header => value}) -> HTTP::Tiny response
sub http_get {
    my ($ngx, $path, $headers) = @_;
    return _http()->get($ngx->url($path), { headers => $headers || {} });
}

# http_post($nginx, '/path', $body, $content_type, {headers})
sub http_post {
    my ($ngx, $path, $body, $type, $headers) = @_;
    my %h = (%{ $headers || {} }, 'content-type' => $type || 'application/x-www-form-urlencoded');
    return _http()->request('POST', $ngx->url($path), { headers => \%h, content => $body });
}

=head2 wrk($url, %opts)

Runs C<wrk --latency> (C<conns> default 4, C<secs> default 3, C<threads>
default 2) and returns C<< { rps, p50, p99, requests, errors } >>, latencies
in milliseconds; C<errors> counts socket errors and non-2xx answers.
C<lua>: a wrk script (C<-s>); C<during>: a sub run while wrk runs.

=cut

sub wrk {
    my ($url, %o) = @_;
    my $conns = $o{conns} || 4;
    my $threads = $o{threads} || 2;
    $threads = $conns if $threads > $conns;
    my $secs = $o{secs} || 3;
    my @cmd = ('wrk', "-t$threads", "-c$conns", "-d${secs}s", '--latency',
        ($o{lua} ? ('-s', $o{lua}) : ()), $url);
    open my $wrk, '-|', @cmd or croak "cannot run wrk: $!";
    $o{during}->() if $o{during};
    my $out = do { local $/; <$wrk> } // '';
    close $wrk;
    croak "wrk failed: $out" if $?;
    my %ms = (us => 0.001, ms => 1, s => 1000, m => 60_000);
    my %r = (errors => 0, output => $out);
    for my $p (50, 99) {
        my ($v, $unit) = $out =~ /^\s+$p(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$/m
            or croak "no p$p in wrk output:\n$out";
        $r{"p$p"} = $v * $ms{$unit};
    }
    ($r{rps}) = $out =~ /^Requests\/sec:\s+([\d.]+)/m;
    ($r{requests}) = $out =~ /^\s+(\d+) requests in/m;
    $r{errors} += $1 while $out =~ /(?:connect|read|write|timeout) (\d+)/g;
    $r{errors} += $1 if $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    return \%r;
}

# multipart_body([name => value, ...], [field => [filename, content, type]], ...)
# -> ($body, $content_type)
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

# --- hand-made FastCGI bytes (only for what the real client cannot send) ---

sub raw_connect {
    my ($d) = @_;
    my $s = _connect_listen($d->socket) or croak 'connect ' . $d->socket . ": $!";
    binmode $s;
    $s->autoflush(1);
    return $s;
}

sub fcgi_record {
    my ($type, $id, $content, $pad) = @_;
    $content = '' unless defined $content;
    $pad ||= 0;
    return pack('CCnnCx', 1, $type, $id, length $content, $pad) . $content . ("\0" x $pad);
}

sub fcgi_begin {
    my ($id, $role, $flags) = @_;
    return fcgi_record(FCGI_BEGIN_REQUEST, $id, pack('nCx5', $role || FCGI_RESPONDER, $flags || 0));
}

# Name-value pairs; lengths > 127 use the 4-byte form.
sub fcgi_nv {
    my (@kv) = @_;
    my $out = '';
    while (my ($k, $v) = splice @kv, 0, 2) {
        $v = '' unless defined $v;
        $out .= join '', map { length > 127 ? pack('N', length | 0x80000000) : pack('C', length) } $k, $v;
        $out .= $k . $v;
    }
    return $out;
}

# Complete request: BEGIN, PARAMS (split into chunks of $o{chunk} bytes), empty
# PARAMS, STDIN (same chunking), empty STDIN. %o: keep_conn, params
# (arrayref/hashref, merged over the usual CGI ones), stdin, chunk, pad, role.
sub fcgi_request_bytes {
    my ($id, $script, %o) = @_;
    my $stdin = defined $o{stdin} ? $o{stdin} : '';
    my %base = (
        GATEWAY_INTERFACE => 'CGI/1.1',
        SERVER_PROTOCOL   => 'HTTP/1.1',
        SERVER_NAME       => 'localhost',
        SERVER_PORT       => '80',
        REMOTE_ADDR       => '127.0.0.1',
        REQUEST_METHOD    => length $stdin ? 'POST' : 'GET',
        SCRIPT_FILENAME   => script_path($script),
        SCRIPT_NAME       => '/' . (split m{/}, $script)[-1],
        REQUEST_URI       => '/' . (split m{/}, $script)[-1],
        QUERY_STRING      => defined $o{query} ? $o{query} : '',
        CONTENT_LENGTH    => length $stdin,
        (length $stdin ? (CONTENT_TYPE => 'application/x-www-form-urlencoded') : ()),
    );
    my @extra = ref $o{params} eq 'HASH' ? %{ $o{params} } : @{ $o{params} || [] };
    my %p = (%base, @extra);
    my $chunk = $o{chunk} || 65535;
    my $pad = $o{pad} || 0;
    my $out = fcgi_begin($id, $o{role} || FCGI_RESPONDER, $o{keep_conn} ? FCGI_KEEP_CONN : 0);
    my $nv = fcgi_nv(map { ($_ => $p{$_}) } sort keys %p);
    $out .= fcgi_record(FCGI_PARAMS, $id, substr($nv, 0, $chunk, ''), $pad) while length $nv;
    $out .= fcgi_record(FCGI_PARAMS, $id, '');
    $out .= fcgi_record(FCGI_STDIN, $id, substr($stdin, 0, $chunk, ''), $pad) while length $stdin;
    $out .= fcgi_record(FCGI_STDIN, $id, '');
    return $out;
}

# Read records from $sock until $o{until}->($rec, \@so_far) is true, EOF, or
# $o{timeout} (default 30 s). Returns (\@records, $why) where $why is
# 'done', 'eof' or 'timeout'. Each record: {type, id, content}.
sub read_records {
    my ($sock, %o) = @_;
    my $until = $o{until} || sub { $_[0]{type} == FCGI_END_REQUEST };
    my $deadline = time + ($o{timeout} || 30) * Test::FCGI::Spawn::timeout_scale();
    my $sel = IO::Select->new($sock);
    my $buf = defined ${ *$sock }{fcgi_buf} ? ${ *$sock }{fcgi_buf} : '';
    my @recs;
    my $why;
    READ: while (1) {
        while (length $buf >= 8) {
            my ($ver, $type, $id, $len, $pad) = unpack 'CCnnC', $buf;
            last if length $buf < 8 + $len + $pad;
            my $rec = { version => $ver, type => $type, id => $id, content => substr($buf, 8, $len) };
            substr($buf, 0, 8 + $len + $pad, '');
            push @recs, $rec;
            if ($until->($rec, \@recs)) { $why = 'done'; last READ }
        }
        my $left = $deadline - time;
        if ($left <= 0 || !$sel->can_read($left)) { $why = 'timeout'; last }
        my $n = sysread $sock, $buf, 65536, length $buf;
        if (!$n) { $why = 'eof'; last }
    }
    ${ *$sock }{fcgi_buf} = $buf;
    return (\@recs, $why);
}

# Sum up the records of request $id: {stdout, stderr, app_status,
# protocol_status, ended}.
sub collect_response {
    my ($recs, $id) = @_;
    my %r = (stdout => '', stderr => '', ended => 0, stdout_eof => 0);
    for my $rec (grep { $_->{id} == $id } @$recs) {
        if ($rec->{type} == FCGI_STDOUT) {
            $r{stdout} .= $rec->{content};
            $r{stdout_eof} = 1 if $rec->{content} eq '';
        }
        elsif ($rec->{type} == FCGI_STDERR) { $r{stderr} .= $rec->{content} }
        elsif ($rec->{type} == FCGI_END_REQUEST) {
            @r{qw(app_status protocol_status)} = unpack 'NC', $rec->{content};
            $r{ended} = 1;
        }
    }
    return \%r;
}

# Pids of the daemon's children (the workers), from /proc.
sub worker_pids {
    my ($d) = @_;
    my $ppid = ref $d ? $d->pid : $d;
    # Without a pid every process whose parent is 0 (init, kthreadd) would
    # match, and a caller that kills "the workers" would signal them.
    return unless $ppid;
    my @pids;
    opendir my $dh, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $stat = slurp("/proc/$p/stat") or next;
        $stat =~ s/^.*\)\s+//s;    # comm may contain spaces
        my (undef, $pp) = split ' ', $stat;
        push @pids, $p if $pp == $ppid;
    }
    @pids = sort { $a <=> $b } @pids;
    return wantarray ? @pids : scalar @pids;
}

# The process exists and is not a zombie (an orphan's zombie waits for
# init to reap it, and kill 0 still finds it).
sub running {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat") or return 0;
    $stat =~ s/^.*\)\s+//s;
    return (split ' ', $stat)[0] ne 'Z';
}

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)\s+kB/m;
    return $kb;
}

1;
