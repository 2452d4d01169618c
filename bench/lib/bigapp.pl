#!/usr/bin/perl
# bench/lib/bigapp.pl: the "big application" scenario (issue 11), run by
# `bench/run --big-app`. gitweb and AWStats (Debian's, with the fixtures of
# t/lib/FcgiSpawn/Apps) in registry isolation, with and without
# --precompile, beside Apache mod_perl ModPerl::Registry with the scripts
# compiled in the parent by ModPerl::RegistryLoader. For each contender:
#
#   - private memory (smaps_rollup Private_Clean + Private_Dirty) of every
#     worker idle, after it served gitweb pages, after it served AWStats
#     pages too (W workers, each page sent W at a time for several rounds,
#     so every worker serves every page; a worker's CPU time says it did);
#   - latency seen by the client of the first AWStats (and gitweb) request
#     a fresh worker serves (one-worker pool, restarted each time), beside
#     the median of the same request on the warm worker.
#
# fcgi-spawn is hit straight on its socket (FastCGI, one connection per
# request); Apache over HTTP on 127.0.0.1 (no nginx in front of either).
#
#   bigapp.pl --bin FCGI_SPAWN [--workers 4] [--rounds 3] [--fresh 3]
#             [--contenders spawn,spawn-precompile,spawn-warm,modperl-loader] --out FILE.md
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use FcgiSpawn::Apps::Gitweb;
use FcgiSpawn::Apps::Awstats;
use FcgiSpawn::Test qw(fcgi_request_bytes read_records collect_response);

my %o = (workers => 4, rounds => 3, fresh => 3,
    contenders => 'spawn,spawn-precompile,spawn-warm,spawn-fork-warm,modperl-loader');
GetOptions(\%o, 'bin=s', 'workers=i', 'rounds=i', 'fresh=i', 'contenders=s', 'out=s', 'keep-tmp')
    && $o{bin} && $o{out} or die "usage: $0 --bin FCGI_SPAWN --out FILE.md [--workers N] [--rounds N] [--fresh N] [--contenders a,b]\n";
my @contenders = split /,/, $o{contenders};
my %LABEL = (
    'spawn'            => 'fcgi-spawn',
    'spawn-precompile' => 'fcgi-spawn --precompile',
    'spawn-warm'       => 'fcgi-spawn --precompile --precompile-warm',
    'spawn-fork-warm'  => 'fcgi-spawn fork isolation, --precompile --precompile-warm',
    'modperl-loader'   => 'mod_perl ModPerl::Registry + RegistryLoader',
);
$LABEL{$_} or die "unknown contender $_ (known: @{[ sort keys %LABEL ]})\n" for @contenders;

sub say { print STDERR "bigapp: @_\n" }

my $tmp = tempdir('fcgi-spawn-bigapp-XXXXXX', TMPDIR => 1, CLEANUP => !$o{'keep-tmp'});
chmod 0755, $tmp;    # Apache's children (www-data) read the fixtures
my $gitweb = FcgiSpawn::Apps::Gitweb::setup("$tmp/gitweb");
my $awstats = FcgiSpawn::Apps::Awstats::setup("$tmp/awstats");
die "gitweb: $gitweb->{skip}\n" if $gitweb->{skip};
die "awstats: $awstats->{skip}\n" if $awstats->{skip};
system('chmod', '-R', 'a+rX', $tmp) == 0 or die "chmod: $?\n";

# The pages of each type, by the fixtures' names.
sub pages {
    my ($app, @names) = @_;
    my %by_name = map { $_->{name} => $_ } map { @{ $_->{requests} } } @{ $app->{sources} };
    return map { $by_name{$_} || die "no page '$_'\n" } @names;
}
my %TYPES = (
    gitweb  => [ pages($gitweb, map {"gitweb $_"} 'projects list', 'summary', 'log', 'commit', 'tree', 'blob') ],
    awstats => [ pages($awstats, map {"awstats $_"} 'main', 'output=allhosts', 'output=browserdetail', 'output=urldetail', 'output=keyphrases') ],
);
my @TYPE_ORDER = qw(gitweb awstats);
my %MARKER = (gitweb => qr/<\/html>/, awstats => qr/<\/html>/i);
my %env = (%{ $gitweb->{env} }, %{ $awstats->{env} });
my %seen;
my @preload = grep { !$seen{$_}++ } @{ $gitweb->{preload} }, @{ $awstats->{preload} };
my @scripts = ('/usr/share/gitweb/gitweb.cgi', '/usr/lib/cgi-bin/awstats.pl');

# --- servers ------------------------------------------------------------------

my @children;    # pids we started, stopped by pid

sub spawn_logged {
    my ($log, @argv) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @argv or POSIX::_exit(127);
    }
    push @children, $pid;
    return $pid;
}

sub kids_of {
    my ($ppid) = @_;
    opendir my $dh, '/proc' or return;
    my @kids;
    for my $p (grep {/^\d+$/} readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh> // next;
        $stat =~ s/^.*\)\s+//s;
        my (undef, $pp) = split ' ', $stat;
        push @kids, $p if $pp == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

sub wait_until {
    my ($secs, $cond) = @_;
    my $end = time + $secs;
    while (time < $end) { return 1 if $cond->(); sleep 0.05 }
    return 0;
}

sub stop_server {
    my ($server) = @_;
    my @workers = kids_of($server->{pid});
    kill 'TERM', $server->{pid};
    my $gone = wait_until(15, sub { waitpid($server->{pid}, POSIX::WNOHANG()) == $server->{pid} });
    if (!$gone) { kill 'KILL', $server->{pid}; waitpid $server->{pid}, 0 }
    wait_until(3, sub { !grep { kill 0, $_ } @workers });
    kill 'KILL', grep { kill 0, $_ } @workers;
    @children = grep { $_ != $server->{pid} } @children;
    return;
}

END { kill 'KILL', @children if @children }

sub start_spawn {
    my ($name, $workers, $precompile, $warm, $isolation) = @_;
    my $dir = "$tmp/$name-$workers";
    mkdir $dir;
    my $sock = "$dir/fcgi.sock";
    # gitweb's named subs keep file lexicals: registry runs it in a child
    # per request, compiled once (the log says so).
    my @argv = ($o{bin}, 'run', '--listen', $sock, '--workers', $workers, '--isolation', $isolation // 'registry',
        '--log', "$dir/daemon.log", (map { ('--root', $_) } '/usr/share/gitweb', '/usr/lib/cgi-bin'),
        (map { ('--preload', $_) } @preload), (map { ('--env', "$_=$env{$_}") } sort keys %env),
        ($precompile ? (map { ('--precompile', $_) } @scripts) : ()),
        # AWStats' main page reads its data files only: safe to warm.
        ($warm ? ('--precompile-warm', "$scripts[1]=$TYPES{awstats}[0]{query}") : ()));
    my $pid = spawn_logged("$dir/stderr.log", @argv);
    my $log = "$dir/daemon.log";
    wait_until(60, sub { -e $log && do { open my $fh, '<', $log; local $/; <$fh> =~ /\bready\b/ } })
        or die "$name did not start: see $dir\n";
    wait_until(30, sub { my @k = kids_of($pid); @k >= $workers }) or die "$name: workers missing\n";
    return { pid => $pid, sock => $sock, kind => 'fastcgi', dir => $dir };
}

sub apache_conf {
    my ($dir, $port, $workers) = @_;
    my $user = getpwnam('www-data') ? 'www-data' : 'nobody';
    my $group = getgrgid((getpwnam $user)[3]);
    my $modules = '/usr/lib/apache2/modules';
    my $startup = "$dir/startup.pl";
    open my $fh, '>', $startup or die "$startup: $!\n";
    print {$fh} "use strict;\nuse ModPerl::RegistryLoader ();\n",
        "my \$loader = ModPerl::RegistryLoader->new(package => 'ModPerl::Registry');\n",
        "\$loader->handler('/gitweb.cgi', '$scripts[0]');\n",
        "\$loader->handler('/awstats.pl', '$scripts[1]');\n1;\n";
    close $fh;
    return <<"CONF";
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile $dir/httpd.pid
DefaultRuntimeDir $dir
ErrorLog $dir/error.log
LogLevel warn
User $user
Group $group
LoadModule mpm_prefork_module $modules/mod_mpm_prefork.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule alias_module $modules/mod_alias.so
LoadModule perl_module $modules/mod_perl.so
StartServers $workers
MinSpareServers $workers
MaxSpareServers $workers
ServerLimit $workers
MaxRequestWorkers $workers
MaxConnectionsPerChild 0
KeepAlive Off
@{[ join "\n", map { "PerlModule $_" } 'ModPerl::Registry', @preload ]}
@{[ join "\n", map { "PerlSetEnv $_ $env{$_}" } sort keys %env ]}
PerlPostConfigRequire $startup
Alias /gitweb.cgi $scripts[0]
Alias /awstats.pl $scripts[1]
<Directory />
    Require all denied
</Directory>
<Location /gitweb.cgi>
    Require all granted
    SetHandler perl-script
    PerlResponseHandler ModPerl::Registry
    PerlOptions +ParseHeaders
</Location>
<Location /awstats.pl>
    Require all granted
    SetHandler perl-script
    PerlResponseHandler ModPerl::Registry
    PerlOptions +ParseHeaders
</Location>
CONF
}

sub start_apache {
    my ($name, $workers) = @_;
    my $dir = "$tmp/$name-$workers";
    mkdir $dir;
    chmod 0755, $dir;
    my $port = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)->sockport;
    open my $fh, '>', "$dir/httpd.conf" or die;
    print {$fh} apache_conf($dir, $port, $workers);
    close $fh;
    my $pid = spawn_logged("$dir/stderr.log", 'setsid', '/usr/sbin/apache2', '-f', "$dir/httpd.conf", '-DFOREGROUND');
    my $up = wait_until(30, sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") });
    $up && wait_until(30, sub { my @k = kids_of($pid); @k >= $workers }) or die "$name did not start: see $dir\n";
    return { pid => $pid, port => $port, kind => 'http', dir => $dir };
}

sub start_contender {
    my ($c, $workers) = @_;
    return start_spawn($c, $workers, 0) if $c eq 'spawn';
    return start_spawn($c, $workers, 1) if $c eq 'spawn-precompile';
    return start_spawn($c, $workers, 1, 1) if $c eq 'spawn-warm';
    return start_spawn($c, $workers, 1, 1, 'fork') if $c eq 'spawn-fork-warm';
    return start_apache($c, $workers);
}

# --- requests -----------------------------------------------------------------

# One request; returns (seconds, ok).
sub request {
    my ($server, $page, $type) = @_;
    my $t0 = time;
    my $body;
    if ($server->{kind} eq 'fastcgi') {
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $server->{sock}) or return (time - $t0, 0);
        binmode $s;
        print {$s} fcgi_request_bytes(1, $page->{script}, query => $page->{query},
            params => { %{ $page->{params} || {} },
                (defined $page->{path_info} ? (PATH_INFO => $page->{path_info}) : ()) });
        my ($recs, $why) = read_records($s, timeout => 60);
        $body = $why eq 'done' ? collect_response($recs, 1)->{stdout} : '';
    }
    else {
        my ($file) = $page->{script} =~ m{([^/]+)\z};
        my $url = "http://127.0.0.1:$server->{port}/$file" . ($page->{path_info} // '')
            . (length $page->{query} ? "?$page->{query}" : '');
        my $r = HTTP::Tiny->new(timeout => 60, keep_alive => 0)->get($url);
        $body = $r->{success} ? $r->{content} : '';
    }
    return (time - $t0, $body =~ $MARKER{$type} ? 1 : 0);
}

# Each page sent `width` at a time (one client process each), `rounds` times.
sub load_pages {
    my ($server, $type, $width, $rounds) = @_;
    my $bad = 0;
    for (1 .. $rounds) {
        for my $page (@{ $TYPES{$type} }) {
            my @kids;
            for (1 .. $width) {
                my $pid = fork // die "fork: $!";
                if (!$pid) {
                    @children = ();    # not this client's to stop
                    my $ok = eval { (request($server, $page, $type))[1] };
                    print STDERR "bigapp: $page->{name}: $@" if !defined $ok;
                    POSIX::_exit($ok ? 0 : 1);
                }
                push @kids, $pid;
            }
            for (@kids) { waitpid $_, 0; $bad++ if $? }
        }
    }
    return $bad;
}

# --- measuring ----------------------------------------------------------------

sub private_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/smaps_rollup" or return undef;
    my $kb = 0;
    while (my $line = <$fh>) { $kb += $1 if $line =~ /^Private_(?:Clean|Dirty):\s+(\d+)/ }
    return $kb;
}

sub cpu_ticks {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    $stat =~ s/^.*\)\s+//s;
    my @f = split ' ', $stat;
    return $f[11] + $f[12];
}

sub median { my @s = sort { $a <=> $b } @_; return $s[ $#s / 2 ] }

my (@memory_rows, @latency_rows, $failures);
$failures = 0;
for my $c (@contenders) {
    say "$LABEL{$c}: memory, $o{workers} workers";
    my $server = start_contender($c, $o{workers});
    sleep 1;
    my @workers = kids_of($server->{pid});
    my %row = map { $_ => { idle => private_kb($_), cpu => cpu_ticks($_) } } @workers;
    for my $type (@TYPE_ORDER) {
        $failures += load_pages($server, $type, $o{workers}, $o{rounds});
        sleep 0.5;
        for my $w (@workers) {
            $row{$w}{$type} = private_kb($w);
            my $cpu = cpu_ticks($w);
            $row{$w}{"served_$type"} = $cpu > $row{$w}{cpu} ? 1 : 0;
            $row{$w}{cpu} = $cpu;
        }
    }
    push @memory_rows, [ $c, map { [ $_, $row{$_} ] } grep { defined $row{$_}{idle} } @workers ];
    stop_server($server);

    say "$LABEL{$c}: first requests on a fresh worker, $o{fresh} starts";
    for my $type (@TYPE_ORDER) {
        my $page = $TYPES{$type}[ $type eq 'awstats' ? 0 : 1 ];
        my (@first, @warm);
        for (1 .. $o{fresh}) {
            my $one = start_contender($c, 1);
            sleep 1;
            my ($t, $ok) = request($one, $page, $type);
            $failures++ unless $ok;
            push @first, $t;
            for (1 .. 5) { my ($w, $okw) = request($one, $page, $type); push @warm, $w; $failures++ unless $okw }
            stop_server($one);
        }
        push @latency_rows, [ $c, $page->{name}, median(@first), median(@warm) ];
    }
}

# --- report -------------------------------------------------------------------

my $mb = sub { sprintf '%.1f', $_[0] / 1024 };
my $signed = sub { sprintf '%+.1f', $_[0] / 1024 };
open my $out, '>', $o{out} or die "$o{out}: $!\n";
printf {$out} "# Big application: gitweb and AWStats, %d workers\n\n", $o{workers};
printf {$out} "Run %s UTC, %s; %d round(s) of each page %d at a time; registry isolation; preloads: %s.\n\n",
    POSIX::strftime('%F %T', gmtime), `uname -nr` =~ s/\s+\z//r, $o{rounds}, $o{workers}, join(' ', @preload);
print {$out} "## Private memory per worker (MB, smaps_rollup Private_Clean + Private_Dirty)\n\n",
    "| contender | worker | idle | after gitweb pages | after AWStats pages too | growth over idle |\n",
    "|---|---:|---:|---:|---:|---:|\n";
for my $r (@memory_rows) {
    my ($c, @ws) = @$r;
    my $n = 0;
    for my $w (@ws) {
        my ($pid, $m) = @$w;
        my $served = join '', map { $m->{"served_$_"} ? '' : ' (served no ' . $_ . ' page)' } @TYPE_ORDER;
        printf {$out} "| %s | %d | %s | %s | %s | %s%s |\n", $LABEL{$c}, ++$n, $mb->($m->{idle}),
            $mb->($m->{gitweb}), $mb->($m->{awstats}), $signed->($m->{awstats} - $m->{idle}), $served;
    }
}
print {$out} "\n## First request on a fresh worker (client side, median of fresh starts)\n\n",
    "| contender | page | first request | warm (median) | first ÷ warm |\n|---|---|---:|---:|---:|\n";
for my $r (@latency_rows) {
    my ($c, $page, $first, $warm) = @$r;
    printf {$out} "| %s | %s | %.1f ms | %.1f ms | %.1f× |\n", $LABEL{$c}, $page, 1000 * $first, 1000 * $warm,
        $warm > 0 ? $first / $warm : 0;
}
print {$out} "\nfcgi-spawn is reached straight on its UNIX socket, Apache over HTTP (no nginx in front of either).\n";
close $out;
say "wrote $o{out}";
say "$failures request(s) failed" if $failures;
exit($failures ? 1 : 0);
