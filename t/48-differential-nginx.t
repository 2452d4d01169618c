# The differential suite of t/47 again, every request through a real nginx
# in front of the daemon (upstream keepalive, fastcgi_keep_conn on), as a
# site serves it: for each request the plain-CGI oracle gets the very params
# nginx sent (Test::FCGI::Spawn::Nginx reads them back from its access log),
# and the status, the script's headers and the body must match. Params
# other than HTTP headers (an app's per-side data directory) reach the daemon
# through nginx from a request header the script does not see.
#
# Same knobs as t/47: FCGI_SPAWN_SEED, FCGI_SPAWN_LONG, FCGI_SPAWN_PAIRS,
# FCGI_SPAWN_STEPS, FCGI_SPAWN_MODES.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test ();
use FcgiSpawn::Sequence;
use Test::FCGI::Spawn;

# Known, reasoned differences: { mode, script => qr//, after => qr//, reason }.
# None may be listed for perlrun or fork.
my @EXCEPTIONS = ();
ok !(grep { !$_->{mode} || $_->{mode} ne 'registry' || !$_->{reason} } @EXCEPTIONS),
    'exceptions: registry only, each with its reason';

my $bin = FcgiSpawn::Test::bin_path();
my $tmp = tempdir('fcgi-spawn-diff-nginx-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($sources, $daemon, $notes) = FcgiSpawn::Sequence::catalogue($tmp);
note $_ for @$notes;

my @modes = FcgiSpawn::Sequence::modes();
my $start = FcgiSpawn::Sequence::daemon_starter($bin, $daemon);
my @params = FcgiSpawn::Sequence::cgi_param_names($sources);
my @scripts = FcgiSpawn::Sequence::extensionless_scripts($sources);
my $nginx = sub { $_[0]->start_nginx(root => '/', params => \@params, scripts => \@scripts) };

my ($checkers) = grep { $_->{name} eq 'checkers' } @$sources;
my @plans;
push @plans, FcgiSpawn::Sequence->new(sources => $sources) unless $ENV{FCGI_SPAWN_PAIRS};
push @plans, FcgiSpawn::Sequence->pairs(sources => $sources) if $ENV{FCGI_SPAWN_LONG} || $ENV{FCGI_SPAWN_PAIRS};
diag 'differential sequence through nginx: seed ' . $_->seed . ', ' . $_->steps . ' steps per mode' for @plans;

for my $mode (@modes) {
    subtest "$mode: every checker on a fresh worker, through nginx, equals plain CGI" => sub {
        FcgiSpawn::Sequence->sanity(mode => $mode, requests => $checkers->{requests}, sender => $nginx,
            start => sub { $start->($_[0], '--max-requests', 1) });
    };
    for my $plan (@plans) {
        subtest "$mode: sequence (seed " . $plan->seed . ') through nginx on one warm worker' => sub {
            $plan->run(mode => $mode, via => 'http', start => $start, sender => $nginx, exceptions => \@EXCEPTIONS,
                reset => $daemon->{reset});
        };
    }
}
done_testing;
