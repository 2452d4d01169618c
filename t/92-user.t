# --user/--group: the master binds the socket as root, the scripts run as the
# given user.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

plan skip_all => 'needs root to switch users' if $> != 0;
my @nobody = getpwnam 'nobody' or BAIL_OUT('no user "nobody" on this machine');
my $nogroup_gid = getgrnam('nogroup') // $nobody[3];

my $d = start_daemon(workers => 1, args => ['--user', 'nobody']);
my ($out) = fcgi_request($d, 'whoami.pl');
like $out, qr/^uid=$nobody[2]$/m, 'script runs with the uid of nobody';
like $out, qr/^euid=$nobody[2]$/m, 'and its effective uid';
like $out, qr/^gid=$nobody[3]$/m, "and nobody's primary group";
like $d->log_text, qr/running as user nobody/, 'the switch is logged';
$d->stop;

my $bad = eval { start_daemon(workers => 1, args => ['--user', 'no-such-user-xyz'], timeout => 3); 1 };
ok !$bad, 'an unknown user is refused';
like $@, qr/user: no-such-user-xyz: no such user/, "with a message naming the setting";
done_testing;
