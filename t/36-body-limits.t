# Request body limits: past --max-body the client gets 413 and the script
# does not run; bodies past --body-spill go through a temp file and reach
# the script byte for byte; a body shorter than CONTENT_LENGTH gives EOF.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1, args => ['--max-body', 100_000, '--body-spill', 1000]);

my $small = join '', map { chr(($_ * 7) % 256) } 1 .. 900;
my ($out) = fcgi_request($d, 'post.pl', query => 'mode=read', data => $small);
like $out, qr/^length=900$/m, 'a body under the spill threshold arrives whole';
like $out, qr/^md5=${\ md5_hex($small)}$/m, 'byte for byte';

my $spilled = join '', map { chr(($_ * 13) % 256) } 1 .. 90_000;
($out) = fcgi_request($d, 'post.pl', query => 'mode=pieces', data => $spilled);
like $out, qr/^length=90000$/m, 'a body past --body-spill arrives whole';
like $out, qr/^md5=${\ md5_hex($spilled)}$/m, 'byte for byte (through the temp file)';

my $too_big = 'x' x 100_001;
($out) = fcgi_request($d, 'post.pl', query => 'mode=read', data => $too_big);
like $out, qr/^Status: 413/m, 'a body past --max-body gives 413';
unlike $out, qr/^length=/m, 'and the script did not run';
like $d->log_text, qr/413: request body for \S+post\.pl is larger than max_body \(\d+ bytes\): \d+ bytes or more, CONTENT_LENGTH \d+; raise max_body/,
    '413 logged with the sizes and the key to raise';

# CONTENT_LENGTH larger than the body: the script gets EOF, no hang.
($out) = fcgi_request($d, 'post.pl', query => 'mode=slurp', data => 'abc',
    params => { CONTENT_LENGTH => 1000 }, timeout => 10);
like $out, qr/^length=3$/m, 'a body shorter than CONTENT_LENGTH ends in EOF';

my ($pid) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
ok $pid, 'worker still serving';
$d->stop;
done_testing;
