package Data::SiteCounter;
# A module of a site's own library directory inside a top-level name that a
# module of the worker owns (Data::, Data::Dumper's), as BackupPC::Lib sits
# beside the system's BackupPC::XS: it is the script's all the same, and a
# request starts with it as loaded (t/scripts/check/own-lib-shared.pl).
# It keeps what BackupPC's CGI keeps: a count, a scalar it exports, and an
# open handle in a package variable (BackupPC's server connection).
use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw($Shared);
our $Count = 0;    # not exported: only the module's own package has it
our $Shared;       # exported: the script's package holds the same scalar
our $Conn;

sub bump {
    $Count++;
    $Shared = ($Shared // 0) + 1;
    open $Conn, '<', __FILE__ or die "open " . __FILE__ . ": $!\n" unless $Conn;
    return;
}

sub connection { return $Conn ? 'kept' : 'none' }

1;
