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
directory and stops it by PID; nothing is ever left running. The daemon,
the processes, the files and the CGI parsing are L<Test::FCGI::Spawn>'s,
the module a site's own tests use: a daemon here is a
C<FcgiSpawn::Test::Daemon>, a Test::FCGI::Spawn whose C<stop> asserts
the exit status, and the helpers it re-exports (C<slurp>, C<spew>,
C<wait_for>, C<parse_cgi>, C<worker_pids>, ...) are the module's. What is
left here is the suite's own: the binary of this tree and t/scripts as
defaults, the ways t/*.t start a daemon (TCP, inherited sockets), the
client's defaults, HTTP through nginx, wrk, and the tiny FastCGI record
encoder below, which exists because malformed input, keep-conn sequences
and management records cannot be produced by the real client.

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
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use Test::More ();
use Time::HiRes qw(time);

my $TOP;
BEGIN { $TOP = abs_path(File::Spec->catdir(dirname(__FILE__), '..', '..', '..')) }
use lib "$TOP/perl";
use Test::FCGI::Spawn qw(
    parse_cgi cgi_header multipart_body slurp spew wait_for free_port connect_to
    worker_pids running rss_kb open_files files_left_open
);

our @EXPORT = qw(
    start_daemon start_nginx
    fcgi_request parse_cgi cgi_header
    http_get http_post multipart_body wrk
    raw_connect fcgi_record fcgi_begin fcgi_nv fcgi_request_bytes
    read_records collect_response
    scripts_dir script_path bin_path wait_for worker_pids running rss_kb
    open_files files_left_open slurp spew process_title
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

# A process's title as ps shows it (fcgi-spawn writes it over its argv).
sub process_title {
    my ($pid) = @_;
    (my $title = slurp("/proc/$pid/cmdline")) =~ s/\0.*//s;
    return $title;
}

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
    my $how = $o{inherit} || '';
    my $listen = $o{listen} ? $o{listen} : $o{tcp} || $how eq 'spawn-fcgi-tcp'
        ? '127.0.0.1:' . free_port() : "$dir/fcgi.sock";
    my @launcher;
    if ($how) {
        my ($port) = $listen =~ /:(\d+)$/;
        @launcher = $how eq 'spawn-fcgi'     ? ('spawn-fcgi', '-n', '-s', $listen, '--')
                  : $how eq 'spawn-fcgi-tcp' ? ('spawn-fcgi', '-n', '-a', '127.0.0.1', '-p', $port, '--')
                  : $how eq 'systemd'        ? ('systemd-socket-activate', '-l', $listen)
                  : croak "unknown inherit => '$how'";
        my ($prog) = grep { -x "$_/$launcher[0]" } split /:/, "$ENV{PATH}:/usr/bin:/usr/sbin";
        croak "$launcher[0] not found (script/install-deps installs it)" unless $prog;
        $launcher[0] = "$prog/$launcher[0]";
    }
    my @flags;
    push @flags, '--max-requests', $o{max_requests} if defined $o{max_requests};
    push @flags, '--socket-mode', $o{socket_mode} if defined $o{socket_mode};
    push @flags, '--pid-file', $o{pid_file} if defined $o{pid_file};
    return FcgiSpawn::Test::Daemon->start(
        binary         => bin_path(),
        dir            => $dir,
        listen         => $listen,
        launcher       => \@launcher,
        workers        => defined $o{workers} ? $o{workers} : 2,
        roots          => ref $o{root} ? $o{root} : [ $o{root} || scripts_dir() ],
        ext            => $o{ext},
        preload        => $o{preload},
        preload_script => $o{preload_script},
        isolation      => $o{isolation},
        args           => [ @flags, @{ $o{args} || [] }, split ' ', $ENV{FCGI_SPAWN_EXTRA_ARGS} || '' ],
        daemon_env     => $o{env},
        start_timeout  => $o{timeout} || 10,
    );
}

package FcgiSpawn::Test::Daemon;

use strict;
use warnings;
use parent -norequire, 'Test::FCGI::Spawn';

# Also for the client objects t/*.t bless into this class for a daemon
# they started another way ({dir, listen, stopped => 1}).
sub binary  { $_[0]{binary} || FcgiSpawn::Test::bin_path() }
sub listen  { $_[0]{listen} }

sub log_lines { return split /\n/, $_[0]->log_text }

# Send a signal, wait for the exit, return the wait status (no assertion).
sub terminate {
    my ($self, $sig, $grace) = @_;
    return $self->SUPER::stop(signal => $sig || 'TERM', grace => $grace || 10);
}

# Wait for an exit caused elsewhere (KILL after $grace s); returns the wait status.
sub wait_exit {
    my ($self, $grace) = @_;
    return $self->SUPER::stop(signal => 0, grace => $grace || 10);
}

# Graceful stop by PID; asserts the daemon exited with status 0.
sub stop {
    my ($self, $sig) = @_;
    $sig ||= 'TERM';
    return if $self->{stopped};
    my $st = $self->SUPER::stop(signal => $sig, grace => 15);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is($st, 0, "daemon (pid $self->{pid}) exits 0 on $sig")
        or Test::More::diag("log:\n" . $self->log_text);
    return $st;
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
    my @flags = defined $o{method} ? ('--method', $o{method}) : ();
    my @params = ref $o{params} eq 'HASH' ? %{ $o{params} } : @{ $o{params} || [] };
    while (my ($k, $v) = splice @params, 0, 2) {
        push @flags, '--param', "$k=$v";
    }
    my ($out, $err, $rc, $timed_out) = $d->_run_client(
        flags    => \@flags,
        body     => $o{data},
        operands => [ script_path($script), defined $o{query} ? $o{query} : () ],
        timeout  => $o{timeout} || 60);
    if ($timed_out) {
        $err .= "\n[test harness: fcgi-spawn request timed out]\n";
        $rc = -1;
    }
    my @res = ($out, $err, $rc);
    return wantarray ? @res : $res[0];
}

=head2 parse_cgi($raw), cgi_header($r, $name)

L<Test::FCGI::Spawn>'s: C<< { status, head, headers => [[lc name, value],
...], body } >>, the status as nginx takes it (C<Status:> header, else 302
with C<Location:>, else 200); the first value of a header.

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

# --- hand-made FastCGI bytes (only for what the real client cannot send) ---

sub raw_connect {
    my ($d) = @_;
    my $s = connect_to($d->socket) or croak 'connect ' . $d->socket . ": $!";
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

1;
