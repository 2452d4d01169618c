# The differential suite over raw FastCGI (issue 8, items 5 and 6): on ONE
# warm worker per isolation mode, a seeded-random sequence of every script
# of t/scripts and examples/, the poisoners (t/scripts/poison), the checkers
# (t/scripts/check) and the applications of t/lib/FcgiSpawn/Apps; each
# response must be byte for byte what the same request gives as a plain CGI
# process. First, every checker on fresh workers must equal plain CGI (else
# it could not tell a leak from its own difference).
#
# FCGI_SPAWN_SEED=n replays a sequence, FCGI_SPAWN_LONG=1 runs a long one
# plus every poisoner followed by every checker (FCGI_SPAWN_PAIRS=1: the
# pairs alone), FCGI_SPAWN_STEPS=n sets the length, FCGI_SPAWN_MODES the
# modes (default: perlrun registry, and fork when the daemon has it);
# FCGI_SPAWN_FROM_STEP=n and FCGI_SPAWN_SKIP_STEPS=a,b narrow a failure down.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../perl";
use File::Temp qw(tempdir);
use Test::More;
use FcgiSpawn::Test ();
use FcgiSpawn::Sequence;
use Test::FCGI::Spawn;

# Known, reasoned differences: { mode, script => qr//, after => qr// (a
# request served before it by the same worker), reason }. None may be
# listed for perlrun or fork: there the bytes must always match.
my @EXCEPTIONS = ();
ok !(grep { !$_->{mode} || $_->{mode} ne 'registry' || !$_->{reason} } @EXCEPTIONS),
    'exceptions: registry only, each with its reason';

my $bin = FcgiSpawn::Test::bin_path();
my $tmp = tempdir('fcgi-spawn-diff-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($sources, $daemon, $notes) = FcgiSpawn::Sequence::catalogue($tmp);
note $_ for @$notes;

my @modes = FcgiSpawn::Sequence::modes();
my $start = FcgiSpawn::Sequence::daemon_starter($bin, $daemon);

# The comparison itself: it must see any byte, and only masks, sorting and
# gunzip (each asked for by the request) may hide one.
subtest 'harness: the comparison catches every difference it should' => sub {
    my $page = sub { my ($raw, %o) = @_; return Test::FCGI::Spawn::_parse_cgi({ raw => $raw, stderr => '', %o }) };
    my $cmp = sub { Test::FCGI::Spawn::compare_responses($_[0], $_[1], $_[2] || {}, $_[3] || 'fastcgi')->{same} };
    my $a = "Content-Type: text/plain\n\nabc\n";
    ok $cmp->($page->($a), $page->($a)), 'same bytes: same';
    ok !$cmp->($page->($a), $page->("Content-Type: text/plain\n\nabd\n")), 'one byte of the body differs';
    ok !$cmp->($page->($a), $page->("Content-Type: text/plain\r\n\r\nabc\n")), 'CRLF headers differ from LF ones';
    ok !$cmp->($page->($a), $page->("Content-Type: text/plain\n\nabc")), 'a missing final newline differs';
    ok $cmp->($page->($a), $page->("Content-Type: text/plain\n\nabd\n"), { mask => [qr/ab./] }), 'a mask hides what it matches';
    ok !$cmp->($page->("X: 1\n\nb\na\n"), $page->("X: 1\n\na\nb\n")), 'line order counts';
    ok $cmp->($page->("X: 1\n\nb\na\n"), $page->("X: 1\n\na\nb\n"), { sort_lines => 'test' }), '... unless sort_lines';
    require IO::Compress::Gzip;
    my ($z1, $z2);
    IO::Compress::Gzip::gzip(\"zipped\n" => \$z1, Minimal => 1);
    IO::Compress::Gzip::gzip(\"zipped\n" => \$z2, Name => 'x', Time => 1);
    ok !$cmp->($page->("X: 1\n\n$z1"), $page->("X: 1\n\n$z2")), 'two gzip encodings differ as bytes';
    ok $cmp->($page->("X: 1\n\n$z1"), $page->("X: 1\n\n$z2"), { gunzip => 1 }), '... and not once gunzipped';
    ok !$cmp->($page->("X: 1\n\n" . substr $z1, 0, 10), $page->("X: 1\n\n$z1"), { gunzip => 1 }), 'a truncated gzip stream differs';
    my $daemon500 = "Status: 500 Internal Server Error\r\n\r\nerror\n";
    ok $cmp->($page->($daemon500, no_output => 1), $page->('')), "the daemon's 500 for no output equals a CGI script printing nothing";
    ok !$cmp->($page->($daemon500), $page->('')), "... but a 500 the script printed does not";
    ok !$cmp->($page->($daemon500, no_output => 1), $page->($a)), "... nor does the daemon's 500 equal a page";
    my $http = { status => 200, headers => [ [ 'server', 'nginx' ], [ 'b', '2' ], [ 'a', '1' ] ], body => "x\n" };
    ok $cmp->($http, $page->("B: 2\nA: 1\n\nx\n"), {}, 'http'), 'through nginx: header order and nginx headers do not count';
    ok !$cmp->({ %$http, status => 302 }, $page->("B: 2\nA: 1\n\nx\n"), {}, 'http'), '... the status does';
    my $bad = $page->("2 syswrite\nContent-Type: text/plain\n\nx\n");
    ok $cmp->({ status => 502, headers => [], body => '', bad_header => 1 }, $bad, {}, 'http'),
        "through nginx: a header block with a line that is no header is nginx's 502 on both sides";
    ok !$cmp->({ status => 502, headers => [], body => '' }, $bad, {}, 'http'), "... a 502 nginx did not log as such is not";
    my $site = Test::FCGI::Spawn->start(binary => $bin, roots => ["$FindBin::Bin/scripts"]);
    my $pid = { script => "$FindBin::Bin/scripts/pid.pl" };
    ok !$site->compare($pid)->{same}, 'a real request: the worker pid differs from the CGI process pid';
    ok $site->compare({ %$pid, mask => [qr/^\d+$/m] })->{same}, '... and is the same once masked';
    is $site->stop, 0, 'daemon stopped by pid';
};

my ($checkers) = grep { $_->{name} eq 'checkers' } @$sources;
my @plans;
push @plans, FcgiSpawn::Sequence->new(sources => $sources) unless $ENV{FCGI_SPAWN_PAIRS};
push @plans, FcgiSpawn::Sequence->pairs(sources => $sources) if $ENV{FCGI_SPAWN_LONG} || $ENV{FCGI_SPAWN_PAIRS};
diag 'differential sequence: seed ' . $_->seed . ', ' . $_->steps . ' steps per mode' for @plans;

for my $mode (@modes) {
    subtest "$mode: every checker on a fresh worker equals plain CGI" => sub {
        FcgiSpawn::Sequence->sanity(mode => $mode, requests => $checkers->{requests},
            start => sub { $start->($_[0], '--max-requests', 1) });
    };
    for my $plan (@plans) {
        subtest "$mode: sequence (seed " . $plan->seed . ') on one warm worker' => sub {
            $plan->run(mode => $mode, via => 'fastcgi', start => $start, exceptions => \@EXCEPTIONS,
                reset => $daemon->{reset});
        };
    }
}
done_testing;
