# Legacy library files without a package line, loaded with require "x.pl"
# and do "x.pl": their subs and globals are the script's, as under CGI, on
# every request (perlrun) and on a reused compiled script (registry).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

for my $isolation (qw(perlrun registry)) {
    my $d = start_daemon(workers => 1, isolation => $isolation);
    for my $n (1 .. 3) {
        my ($out, $err) = fcgi_request($d, 'legacy/page.pl');
        like $out, qr/^== Legacy Site ==$/m, "$isolation $n: sub from the required file";
        like $out, qr/^hello, visitor$/m, "$isolation $n: another sub from it";
        like $out, qr/^colour=blue items=3$/m, "$isolation $n: do FILE returned the settings";
        like $out, qr/^site=Legacy Site$/m, "$isolation $n: global set by the required file";
    }
    unlike $d->log_text, qr/redefined|Undefined subroutine/, "$isolation: no redefinition or missing sub";
    $d->stop;
}
done_testing;
