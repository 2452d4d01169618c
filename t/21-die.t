# die outside eval: 500 before any output, page kept after; message with
# file and line in the log; eval/__DIE__ keep working; worker lives on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
my ($pid0) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;

my ($out, $err, $rc) = fcgi_request($d, 'die.pl');
my $r = parse_cgi($out);
is $r->{status}, 500, 'die before output gives Status 500';
unlike $out, qr/not reached/, 'nothing after die ran';
my $script = script_path('die.pl');
ok wait_for(sub { $d->log_text =~ /intentional-die-marker at \Q$script\E line 8/ }, 5),
    'log has the message with file and line' or diag $d->log_text;

($out) = fcgi_request($d, 'die-after-output.pl');
$r = parse_cgi($out);
is $r->{status}, 200, 'die after the headers: status stays 200';
is $r->{body}, "partial body\n", 'partial page delivered unchanged';
ok wait_for(sub { $d->log_text =~ /late-die-marker/ }, 5), 'late die logged';

($out) = fcgi_request($d, 'die-in-eval.pl');
is parse_cgi($out)->{body}, "eval returned: false\nerror: caught-marker\nhandler saw: caught-marker\n",
    'die inside eval is caught by the eval, $SIG{__DIE__} sees it';

my ($pid1) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
is $pid1, $pid0, 'same worker after the dies';
$d->stop;
done_testing;
