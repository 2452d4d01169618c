# The shipped web server recipes, each in front of a daemon started with the
# shipped contrib/fcgi-spawn.toml (socket group www-data, scripts as
# www-data): contrib/nginx/fcgi-spawn.conf in a real nginx and
# contrib/apache/fcgi-spawn.conf in a real Apache 2.4 with mod_proxy_fcgi,
# both on 127.0.0.1. Pages, POST bodies, 404s, and URLs continuing past the
# script (PATH_INFO): the script sees the same SCRIPT_NAME, SCRIPT_FILENAME
# and PATH_INFO through either server, the values a CGI server gives.
# Neither recipe serves what a CGI tree keeps beside its scripts (modules,
# backups, dotfiles, configuration, data).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::MD5 qw(md5_hex);
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

plan skip_all => 'needs root: the shipped config runs the scripts as www-data' if $> != 0;

my $docroot = scripts_dir();
my $d0 = start_daemon(workers => 1);    # only for its private directory
my $dir = $d0->dir;
$d0->stop;
my $toml = install_recipe('fcgi-spawn.toml', "$dir/fcgi-spawn.toml",
    '/srv/www' => $docroot, 'workers = 4' => 'workers = 2');
my $d = start_daemon(workers => 2, args => ['--config', $toml]);
# Apache's children (www-data) reach the socket through the temp directory.
chmod 0755, $d->dir;
like $d->log_text, qr/running as user www-data/, 'the daemon runs the scripts as www-data';

my $nport = free_port();
my $ngx = start_nginx_site(recipe_text('nginx/fcgi-spawn.conf',
    'listen 80;' => "listen 127.0.0.1:$nport;",
    'unix:/run/fcgi-spawn/fcgi.sock' => 'unix:' . $d->socket,
    '/srv/www' => $docroot), $d->dir, port => $nport);
my $aport = free_port();
my $apache = start_apache_site(recipe_text('apache/fcgi-spawn.conf',
    '<VirtualHost *:80>' => "<VirtualHost *:$aport>",
    '/run/fcgi-spawn/fcgi.sock' => $d->socket,
    '/srv/www' => $docroot), $d->dir, port => $aport);

my $http = HTTP::Tiny->new(max_redirect => 0, timeout => 30, keep_alive => 0);

# What env.pl printed, as a hash (ENV:NAME=VALUE lines, $0 as '0').
sub script_env {
    my ($res) = @_;
    my %env = $res->{content} =~ /^ENV:([A-Z_0-9]+)=(.*)$/mg;
    ($env{0}) = $res->{content} =~ /^0=(.*)$/m;
    return \%env;
}

my @cgi_vars = qw(SCRIPT_NAME SCRIPT_FILENAME PATH_INFO QUERY_STRING REQUEST_METHOD
    REQUEST_URI DOCUMENT_ROOT CONTENT_LENGTH CONTENT_TYPE 0);

for my $case (
    [ '/env.pl',                   { SCRIPT_NAME => '/env.pl', PATH_INFO => undef, QUERY_STRING => '' } ],
    [ '/env.pl?x=1&y=%20',         { SCRIPT_NAME => '/env.pl', PATH_INFO => undef, QUERY_STRING => 'x=1&y=%20' } ],
    [ '/env.pl/a/b%20c?x=1',       { SCRIPT_NAME => '/env.pl', PATH_INFO => '/a/b c', QUERY_STRING => 'x=1' } ],
    [ '/env.pl/',                  { SCRIPT_NAME => '/env.pl', PATH_INFO => '/', QUERY_STRING => '' } ],
    [ '/sub/findbin.pl/deeper/x',  { SCRIPT_NAME => '/sub/findbin.pl', PATH_INFO => '/deeper/x' } ],
) {
    my ($url, $want) = @$case;
    my (%seen);
    for my $srv ([ nginx => $ngx ], [ apache => $apache ]) {
        my ($name, $s) = @$srv;
        my $res = $http->get($s->{url}->($url));
        is $res->{status}, 200, "$name $url: 200" or diag $res->{content};
        my $env = script_env($res);
        $seen{$name} = $env;
        next unless $url =~ m{^/env\.pl};
        my $file = "$docroot$want->{SCRIPT_NAME}";
        is $env->{SCRIPT_FILENAME}, $file, "$name $url: SCRIPT_FILENAME is the file";
        is $env->{0}, $file, "$name $url: \$0 is the file";
        for my $k (sort keys %$want) {
            is $env->{$k}, $want->{$k}, "$name $url: $k " . (defined $want->{$k} ? "'$want->{$k}'" : 'not set');
        }
    }
    next unless $url =~ m{^/env\.pl};
    # Debian's fastcgi_params sends CONTENT_TYPE and CONTENT_LENGTH empty
    # without a body, Apache leaves them out: the same to a script.
    for my $env (values %seen) {
        defined $env->{$_} && !length $env->{$_} and delete $env->{$_} for qw(CONTENT_TYPE CONTENT_LENGTH);
    }
    is_deeply { map { $_ => $seen{apache}{$_} } @cgi_vars }, { map { $_ => $seen{nginx}{$_} } @cgi_vars },
        "$url: the script sees the same CGI variables through Apache and nginx";
}

# A page, a POST body, a missing script.
my $big = join '', map { chr(32 + $_ % 90) } 1 .. 300_000;
for my $srv ([ nginx => $ngx ], [ apache => $apache ]) {
    my ($name, $s) = @$srv;
    my $res = $http->get($s->{url}->('/hello.pl?name=Ann'));
    is $res->{status}, 200, "$name: hello.pl 200";
    is $res->{content}, "<p>Hello, Ann!</p>\n", "$name: the page";
    like $res->{headers}{'content-type'}, qr{^text/html; charset=utf-8}i, "$name: the script's Content-Type";
    $res = $http->request('POST', $s->{url}->('/post.pl'),
        { headers => { 'content-type' => 'application/octet-stream' }, content => $big });
    is $res->{status}, 200, "$name: POST 300 kB 200";
    like $res->{content}, qr/^length=300000$/m, "$name: the whole body reaches the script";
    like $res->{content}, qr/^md5=@{[ md5_hex($big) ]}$/m, "$name: byte for byte";
    $res = $http->get($s->{url}->('/no-such-script.pl'));
    is $res->{status}, 404, "$name: a missing script is a 404";
    # t/scripts/site: what a legacy CGI tree keeps beside its scripts. The
    # recipe fetches none of it, only static files.
    for my $private (qw(/site/lib/Greeting.pm /site/config.pl.bak /site/.htpasswd
        /site/data/site.sqlite /site/site.conf /site/index.pl~ /sub/lib/SubLocal.pm)) {
        $res = $http->get($s->{url}->($private));
        like $res->{status}, qr/^40[34]$/, "$name: $private is not served ($res->{status})";
        unlike $res->{content}, qr/hunter2|module source|apr1|SQLite format|old copy|package SubLocal/,
            "$name: ... nor any of its bytes";
    }
    for my $static (qw(/site/about.html /site/style.css)) {
        $res = $http->get($s->{url}->($static));
        is $res->{status}, 200, "$name: a static file ($static) still is";
    }
}

stop_server($apache);
stop_server($ngx);
ok !(grep { running($_) } $apache->{pid}, $ngx->{pid}), 'web servers stopped';
$d->stop;
done_testing;
