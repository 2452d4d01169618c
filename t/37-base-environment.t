# The scripts' base environment is clean: only PATH and a few locale/time
# variables of the daemon's environment pass (--pass-env adds names, `*`
# keeps all), --env sets variables for every script; request params on top.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

local $ENV{FCGI_SPAWN_TEST_SECRET} = 'from-the-daemon-environment';

my $d = start_daemon(workers => 1, args => ['--env', 'SITE_MODE=production']);
my ($out) = fcgi_request($d, 'env-base.pl', query => 'a=1');
like $out, qr/^PATH=\Q$ENV{PATH}\E$/m, 'PATH passes';
like $out, qr/^FCGI_SPAWN_TEST_SECRET=unset$/m, "other daemon variables don't";
like $out, qr/^SITE_MODE=production$/m, '--env sets a variable';
like $out, qr/^QUERY_STRING=a=1$/m, 'request params on top';
$d->stop;

$d = start_daemon(workers => 1, args => ['--pass-env', 'FCGI_SPAWN_TEST_SECRET']);
($out) = fcgi_request($d, 'env-base.pl');
like $out, qr/^FCGI_SPAWN_TEST_SECRET=from-the-daemon-environment$/m, '--pass-env NAME passes it';
like $out, qr/^PATH=unset$/m, 'an explicit list replaces the default one';
$d->stop;

$d = start_daemon(workers => 1, args => ['--pass-env', '*']);
($out) = fcgi_request($d, 'env-base.pl');
like $out, qr/^FCGI_SPAWN_TEST_SECRET=from-the-daemon-environment$/m, "--pass-env '*' keeps everything";
like $out, qr/^PATH=\Q$ENV{PATH}\E$/m, 'PATH too';
$d->stop;

my $bad = eval { start_daemon(workers => 1, args => ['--env', 'NOVALUE'], timeout => 3); 1 };
ok !$bad, '--env without = is refused';
like $@, qr/env: "NOVALUE" is not NAME=VALUE/, 'naming the setting';

# A worker's first request: %ENV and what a child process inherits are the
# same names, none of the daemon's other variables among them (the worker
# makes that request's environment anew rather than from the master's).
for my $mode (qw(perlrun registry fork)) {
    my $d = start_daemon(workers => 1, args => ['--isolation', $mode]);
    for my $n (1 .. 2) {
        my ($out) = fcgi_request($d, 'env-names.pl', query => "n=$n");
        my ($perl) = $out =~ /^perl (.*)$/m;
        my ($child) = $out =~ /^child (.*)$/m;
        ok defined $perl && $perl =~ /\bQUERY_STRING\b/ && $perl =~ /\bPATH\b/,
            "$mode, request $n: %ENV has the request and the base" or diag $out;
        is $child, $perl, "$mode, request $n: a child gets exactly %ENV's names";
        unlike $perl // '', qr/FCGI_SPAWN_TEST_SECRET/, "$mode, request $n: not the daemon's other variables";
    }
    $d->stop;
}

# Child processes see the request's environment, also after earlier requests
# changed it.
{
    my $d = start_daemon(workers => 1);
    for my $n (1 .. 3) {
        my ($out) = fcgi_request($d, 'child-env.pl', query => "n=$n");
        like $out, qr/^child QUERY_STRING=n=$n$/m, "request $n: a child sees this request's QUERY_STRING";
        like $out, qr/^child SET_BY_SCRIPT=yes-n=$n$/m, "request $n: and the script's own %ENV change";
        like $out, qr/^child LEFT_OVER=unset$/m, "request $n: but nothing an earlier request set";
    }
    $d->stop;
}
done_testing;
