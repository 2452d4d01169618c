# Real applications from their Debian packages, each request served warm
# in every isolation mode and compared byte for byte with the same request
# run as a plain CGI process: FcgiSpawn::Apps::Suite says how. This file:
# gitweb, dwww, munin's CGIs, BackupPC's admin interface; t/54-apps-more.t
# the others (the two run side by side).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use FcgiSpawn::Apps::Suite;

FcgiSpawn::Apps::Suite::run_apps(@FcgiSpawn::Apps::Suite::FIRST_HALF);
