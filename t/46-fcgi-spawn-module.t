# The FCGI::Spawn module scripts can use: $FCGI::Spawn::PERSISTENT and
# xinc(), a per-worker cache invalidated when the file's mtime changes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use FcgiSpawn::Test;

my $dir = tempdir('fcgi-spawn-xinc-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $data = "$dir/data.txt";
spew($data, 'first');

sub loads { my @l = -e "$data.loads" ? split /\n/, slurp("$data.loads") : (); scalar @l }

my $d = start_daemon(workers => 1);
my ($out) = fcgi_request($d, 'xinc.pl', query => $data);
like $out, qr/^persistent=1$/m, '$FCGI::Spawn::PERSISTENT is set';
like $out, qr/^value=first$/m, 'xinc returns what the loader returned';
is loads(), 1, 'loaded once';
($out) = fcgi_request($d, 'xinc.pl', query => $data);
like $out, qr/^value=first$/m, 'second request: same value';
is loads(), 1, 'from the cache';

spew($data, 'second');
utime time + 5, time + 5, $data;
($out) = fcgi_request($d, 'xinc.pl', query => $data);
like $out, qr/^value=second$/m, 'a changed file is loaded again';
is loads(), 2, 'once more';
$d->stop;
done_testing;
