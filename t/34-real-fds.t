# STDIN/STDOUT/STDERR are real fds 0/1/2: system, backticks, pipes, exec and
# children reading the body behave as under CGI, in order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1);
for my $round (1 .. 2) {
    my ($out, $err, $rc) = fcgi_request($d, 'fds.pl');
    is $rc, 0, "round $round: request ok";
    is parse_cgi($out)->{body}, join('', map { "$_\n" }
        '1 perl', '2 system', '3 perl', '4 backticks', '5 pipe-from', '6 perl', '7 pipe-to-cat',
        '8 sh printf', 'fileno=0,1,2', 'tty=0', '9 perl last'),
        "round $round: output of perl and of child processes in order";
}
ok wait_for(sub { $d->log_text =~ /fds-stderr-marker/ }, 5), "child's fd 2 goes to the log";
unlike $d->log_text =~ s/.*fds-stderr-marker.*//r, qr/\b[1-9] (perl|system|backticks|pipe)/, 'no stdout bytes ended up in the log';

my $body = "line one\nline two\n" x 1000;
my ($out) = fcgi_request($d, 'fds-stdin.pl', method => 'POST', data => $body);
is parse_cgi($out)->{body}, "body follows\n$body\nbody done\n", 'a child (cat) reads the request body from fd 0';

($out) = fcgi_request($d, 'fds-exec.pl');
is parse_cgi($out)->{body}, "parent\nexec-child-output\nparent after child\n", 'fork+exec child writes to the client';

my ($pid) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
ok $pid, 'worker still serves';
$d->stop;
done_testing;
