package FcgiSpawn::Recipe;

=head1 NAME

FcgiSpawn::Recipe - run the files shipped in contrib/ with the real programs

=head1 SYNOPSIS

    use FcgiSpawn::Recipe;
    my $toml = install_recipe('fcgi-spawn.toml', "$dir/fcgi-spawn.toml",
        '/srv/www' => $docroot);
    my $site = recipe_text('nginx/fcgi-spawn.conf',
        'listen 80;' => "listen 127.0.0.1:$port;", ...);
    my $ngx = start_nginx_site($site, $dir);
    ...
    stop_server($ngx);

=head1 DESCRIPTION

A recipe is tested as shipped: its text is read from F<contrib/>, and only
the paths and ports a test must move into its temp directory are replaced,
each replacement named and required to match (a recipe that changes under a
test fails it instead of being silently untested). Every program started
here is a child of the test, started and stopped by pid with
L<Test::FCGI::Spawn>'s process helpers, whose safety net kills it if a test
dies.

=cut

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Spec;
use FcgiSpawn::Test ();
use Test::FCGI::Spawn qw(
    slurp spew free_port connect_to start_process stop_process kill_leftovers descendants
);

our @EXPORT = qw(
    contrib_path recipe_text install_recipe install_service_dir free_port bin_dir
    start_nginx_site start_apache_site start_server stop_server http_ok
    descendants
);

my $TOP = abs_path(File::Spec->catdir(dirname(__FILE__), '..', '..', '..'));

sub contrib_path { return "$TOP/contrib/$_[0]" }

=head2 recipe_text($file, FROM => TO, ...)

The text of F<contrib/$file> with each FROM replaced (everywhere) by TO, in
order; croaks when a FROM does not occur.

=cut

sub recipe_text {
    my ($file, @pairs) = @_;
    my $text = slurp(contrib_path($file));
    croak "contrib/$file is missing or empty" unless length $text;
    while (my ($from, $to) = splice @pairs, 0, 2) {
        croak "contrib/$file no longer contains '$from'" unless index($text, $from) >= 0;
        $text =~ s/\Q$from\E/$to/g;
    }
    return $text;
}

# install_recipe($file, $dest, FROM => TO, ...): recipe_text written to
# $dest with the shipped file's mode; returns $dest.
sub install_recipe {
    my ($file, $dest, @pairs) = @_;
    my $mode = (stat contrib_path($file))[2] & 07777;
    return spew($dest, recipe_text($file, @pairs), $mode);
}

# The shipped service directory (contrib/daemontools/fcgi-spawn, its
# log/run, contrib/fcgi-spawn.toml with 2 workers serving t/scripts) in
# $dir/service, its runtime directory $dir/run; `fcgi-spawn` first in PATH
# (set by the caller from bin_dir). Returns the service directory, the
# socket and the log service's current file. Needs root (as the run
# script: the runtime directory goes to www-data).
sub install_service_dir {
    my ($dir) = @_;
    my $toml = install_recipe('fcgi-spawn.toml', "$dir/fcgi-spawn.toml",
        '/srv/www' => FcgiSpawn::Test::scripts_dir(), 'workers = 4' => 'workers = 2');
    my $svc = "$dir/service/fcgi-spawn";
    mkdir $_ for "$dir/service", $svc, "$svc/log";
    install_recipe('daemontools/fcgi-spawn/run', "$svc/run",
        '/etc/fcgi-spawn/fcgi-spawn.toml' => $toml, '/run/fcgi-spawn' => "$dir/run");
    install_recipe('daemontools/fcgi-spawn/log/run', "$svc/log/run");
    return ($svc, "$dir/run/fcgi.sock", "$svc/log/main/current");
}

# A directory holding `fcgi-spawn` (a link to the binary under test), to put
# first in PATH for recipes that call the daemon by name.
sub bin_dir {
    my ($dir) = @_;
    mkdir "$dir/bin";
    symlink FcgiSpawn::Test::bin_path(), "$dir/bin/fcgi-spawn" or croak "symlink: $!"
        unless -l "$dir/bin/fcgi-spawn";
    return "$dir/bin";
}

=head2 start_server(name => N, argv => [...], log => FILE, port => P, ready => sub)

Spawns a program (stdout and stderr to C<log>) and waits up to 20 s until
C<ready> returns true (default: C<port> on 127.0.0.1 accepts). Croaks with
the log if it exits or does not get ready. Returns a hash with C<pid>,
C<port>, C<url> (a sub), C<log>.

=cut

sub start_server {
    my (%o) = @_;
    my $ready = $o{ready} || sub {
        my $s = connect_to("127.0.0.1:$o{port}");
        close $s if $s;
        return !!$s;
    };
    my $pid = start_process(argv => $o{argv}, stdout => $o{log}, stderr => $o{log}, ready => $ready,
        timeout => 20, name => $o{name},
        log => sub { join '', map { slurp($_) } grep { defined } $o{log}, @{ $o{logs} || [] } });
    my $port = $o{port};
    return { %o, pid => $pid, url => sub { "http://127.0.0.1:$port$_[0]" } };
}

# stop_server($server, $sig, %o): signal by pid, wait (10 s, then KILL),
# also for the processes it started (a prefork Apache's children), unless
# leave_children (svscan: its supervise processes are stopped with svc
# -dx); returns the wait status.
sub stop_server {
    my ($srv, $sig, %o) = @_;
    return undef if $srv->{stopped}++;
    my @kids = descendants($srv->{pid});
    my $st = stop_process($srv->{pid}, $sig || 'TERM', 10);
    kill_leftovers(\@kids, 5, "$srv->{name}: processes of pid $srv->{pid}, which is gone") unless $o{leave_children};
    return $st;
}

=head2 start_nginx_site($site_text, $dir, port => P)

A real nginx whose C<http> block includes C<$site_text> (a shipped server
and upstream block, its C<listen> already moved to 127.0.0.1:P), with
Debian's own F<fastcgi_params> beside it. Runs as root when the test does
(its workers must reach sockets in temp directories).

=cut

sub start_nginx_site {
    my ($site, $dir, %o) = @_;
    my $prefix = "$dir/nginx-$o{port}";
    mkdir $prefix;
    mkdir "$prefix/$_" for qw(logs tmp);
    my $params = slurp('/etc/nginx/fastcgi_params')
        or croak '/etc/nginx/fastcgi_params missing (nginx-light installs it)';
    spew("$prefix/fastcgi_params", $params);
    spew("$prefix/site.conf", $site);
    my $user = $> == 0 ? "user root root;\n" : '';
    # Debian's nginx has its temp paths under /var/lib/nginx: moved here.
    my $temp = join '', map { "    ${_}_temp_path $prefix/tmp/$_;\n" } qw(client_body proxy fastcgi uwsgi scgi);
    spew("$prefix/nginx.conf", <<"CONF");
${user}daemon off; master_process on; worker_processes 1; pid $prefix/nginx.pid;
error_log $prefix/logs/error.log info;
events { worker_connections 256; }
http {
    access_log $prefix/logs/access.log;
$temp    include $prefix/site.conf;
}
CONF
    my $nginx = Test::FCGI::Spawn::Nginx->binary;
    return start_server(
        name => 'nginx', port => $o{port}, log => "$prefix/logs/stderr.log",
        logs => ["$prefix/logs/error.log"], error_log => "$prefix/logs/error.log",
        argv => [ $nginx, '-p', "$prefix/", '-c', "$prefix/nginx.conf", '-e', "$prefix/logs/error.log" ]);
}

=head2 start_apache_site($site_text, $dir, port => P)

A real Apache 2.4 (prefork, as www-data) with mod_proxy and mod_proxy_fcgi
loaded and the shipped site included (its C<< <VirtualHost> >> already
moved to port P); its logs in C<$dir>.

=cut

sub start_apache_site {
    my ($site, $dir, %o) = @_;
    my $root = "$dir/apache-$o{port}";
    mkdir $root;
    my $m = '/usr/lib/apache2/modules';
    croak 'Apache 2.4 with mod_proxy_fcgi not installed (script/install-deps installs apache2)'
        unless -x '/usr/sbin/apache2' && -e "$m/mod_proxy_fcgi.so";
    spew("$root/site.conf", $site);
    spew("$root/httpd.conf", <<"CONF");
ServerRoot $root
ServerName 127.0.0.1
Listen 127.0.0.1:$o{port}
PidFile $root/httpd.pid
DefaultRuntimeDir $root
ErrorLog $root/error.log
LogLevel warn
User www-data
Group www-data
Define APACHE_LOG_DIR $root
LoadModule mpm_prefork_module $m/mod_mpm_prefork.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule dir_module $m/mod_dir.so
LoadModule proxy_module $m/mod_proxy.so
LoadModule proxy_fcgi_module $m/mod_proxy_fcgi.so
StartServers 2
Include $root/site.conf
CONF
    chmod 0755, $dir, $root;
    # setsid: at shutdown the prefork parent signals its whole process group.
    return start_server(
        name => 'apache2', port => $o{port}, log => "$root/stderr.log", logs => ["$root/error.log"],
        error_log => "$root/fcgi-spawn-error.log",
        argv => [ 'setsid', '/usr/sbin/apache2', '-f', "$root/httpd.conf", '-DFOREGROUND' ]);
}

1;
