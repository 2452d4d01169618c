# Real applications, second half (t/49-apps.t has the first): AWStats,
# cvsweb and an in-house application, each request served warm in every
# isolation mode and compared byte for byte with a plain CGI run
# (FcgiSpawn::Apps::Suite).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use FcgiSpawn::Apps::Suite;

my %first = map { $_ => 1 } @FcgiSpawn::Apps::Suite::FIRST_HALF;
FcgiSpawn::Apps::Suite::run_apps(grep { !$first{$_} } FcgiSpawn::Apps::Fixture::apps());
