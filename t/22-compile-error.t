# Compile errors (syntax, strict) give a 500 and a log line with file and
# line; the next request to a good script is served by the same worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;
use Test::FCGI::Spawn;

$ENV{FCGI_SPAWN_BIN} //= FcgiSpawn::Test::bin_path();

my $d = start_daemon(workers => 1);
my ($pid0) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;

my ($out) = fcgi_request($d, 'compile-error.pl');
is parse_cgi($out)->{status}, 500, 'syntax error: 500';
unlike $out, qr/not reached/, 'nothing of the script ran';
my $f = script_path('compile-error.pl');
ok wait_for(sub { $d->log_text =~ /syntax error at \Q$f\E line 6/ }, 5), 'log: syntax error with file and line'
    or diag $d->log_text;

($out) = fcgi_request($d, 'strict-error.pl');
is parse_cgi($out)->{status}, 500, 'strict vars error: 500';
$f = script_path('strict-error.pl');
ok wait_for(sub { $d->log_text =~ /undeclared_variable_marker.*\Q$f\E line 6/ }, 5), 'log: strict error with file and line';

($out) = fcgi_request($d, 'hello.pl');
is parse_cgi($out)->{status}, 200, 'a good script still works';
my ($pid1) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
is $pid1, $pid0, 'same worker';
$d->stop;

# Compile errors between scripts that change every piece of interpreter
# state and the checker of that state: in every mode, round after round,
# the checker sees what it sees on a fresh worker, the worker puts
# everything back (no restore error) and lives on.
for my $mode (qw(perlrun registry fork)) {
    my $w = start_daemon(workers => 1, isolation => $mode);
    my ($clean) = fcgi_request($w, 'iso-check.pl');
    like $clean, qr/^irs=newline$/m, "$mode: checker sane on a fresh worker";
    for my $round (1 .. 5) {
        fcgi_request($w, 'strict-error.pl');
        fcgi_request($w, 'iso-set.pl');
        fcgi_request($w, 'compile-error.pl');
        my ($after) = fcgi_request($w, 'iso-check.pl');
        is $after, $clean, "$mode round $round: after compile errors and a poisoner, the state is a fresh worker's";
    }
    unlike $w->log_text, qr/could not be restored/, "$mode: no restore failed";
    unlike $w->log_text, qr/worker \d+ (?:exited|killed)/, "$mode: the same worker served every request";
    $w->stop;
}

# What a script's __DIE__ handler (CGI::Carp's fatalsToBrowser among them)
# and so the browser get for a compile error: perl's message for a program,
# on a worker that has served the others first.
for my $mode (qw(perlrun registry fork)) {
    my $site = Test::FCGI::Spawn->start(roots => [ FcgiSpawn::Test::scripts_dir() ], isolation => $mode,
        preload => ['CGI']);
    for my $round (1 .. 2) {
        for my $name (qw(compile-fatals-to-browser compile-die-handler-syntax compile-die-handler-begin)) {
            $site->same_as_cgi({ script => script_path("poison/$name.pl"), name => "$name (round $round)" },
                "$mode: $name.pl, round $round, as under plain CGI");
        }
    }
    $site->stop;
}
done_testing;
