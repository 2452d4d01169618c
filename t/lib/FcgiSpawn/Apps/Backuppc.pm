package FcgiSpawn::Apps::Backuppc;

=head1 NAME

FcgiSpawn::Apps::Backuppc - BackupPC's admin interface (Debian package backuppc), installed under the temp dir with hosts, backups and a server state made by the test

=head1 SYNOPSIS

    my $app = FcgiSpawn::Apps::Backuppc::setup($tmpdir);

=head1 DESCRIPTION

The CGI is F</usr/share/backuppc/lib/realindex.cgi> (Debian's
F</usr/lib/backuppc/cgi-bin/index.cgi> is a setuid C wrapper that runs it
as the backuppc user), served as F<cgi-bin/index.cgi> of the install
directory, where BackupPC's own installer puts it (C<$Conf{CgiDir}>), the
daemon's only C<--root>. It does C<use lib "/usr/share/backuppc/lib">, and
everything it shows comes from its own modules there (C<BackupPC::Lib>,
C<BackupPC::CGI::*>, the language files), outside the root: the issue's
item 3.

BackupPC has no run-time setting for where its configuration is: its
installer, C<configure.pl>, writes F</etc/backuppc> and its install, data
and run directories into the code (C<BackupPC::Lib>, whose lines say
"updated by configure.pl", C<BackupPC::Storage::Text>,
C<BackupPC::CGI::Lib>, C<BackupPC::CGI::EditConfig>, the CGI's C<use
lib>). So the set-up installs it again under the temp dir the way
C<configure.pl --config-dir --install-dir --data-dir> would: the
package's F<lib> tree (realindex.cgi included) copied byte for byte but for
those paths (C<copy_tree> of L<FcgiSpawn::Apps::Fixture>, which fails if
the package stops mentioning one of them), and the package's default
F<config.pl> (F</usr/share/backuppc/conf>) likewise, followed by the
fixture's settings: the server host, C<BackupPCUser> = the user the test
runs as (the CGI checks it runs as that user), admin user C<admin>, a
message secret. Nothing under F</etc>, F</var> or F</run> is read or
written.

Set-up: three hosts with their users (carol owns alpha and shares beta,
dave owns beta, erin owns gamma); per-host configuration files that set
C<$Conf{Language}> to C<de> for alpha and C<fr> (with another date format)
for beta; backups, restores and a restore request written with
BackupPC's own C<BackupInfoWrite>/C<RestoreInfoWrite>, dated May 2023;
server and host LOG files; every file's modification time fixed (the
pages show them). Most pages ask the BackupPC server for its state
over a unix socket: F<t/apps/backuppc/server.pl> stands in for it (the
real one schedules backups and stamps its state with the time and its pid)
and answers with a fixed state in the real server's format: a running
backup of beta, a failed ping of gamma, queued requests. The fixture
starts it and it ends with the test (an END block here, and it watches
for the test's pid).

A per-host page reads that host's configuration into C<%Conf> and
C<$Lang>, package variables of C<BackupPC::CGI::Lib>, whose C<NewRequest>
reads the main configuration again only when F<config.pl> changed: a
worker that kept those modules would serve the next page with the last
host's language (fcgi-spawn before issue 20: the queue page in French
after beta's page). Under CGI every request starts from the main
configuration, in English. Pages: the server status
(admin and a plain user), the host summary (which reads every host's
configuration while it renders, so its status words come out in each
host's language, under CGI too), each host's page (German, French,
English) and alpha's page refused to erin (in German), the queues, the
server LOG and alpha's LOG list and file, alpha's configuration file, a
restore's details and the configuration editor for beta.

=head2 Masks

Times computed from the current time: the "generated at" line of the
status and summary pages, and the age columns in days of the summary and
of a host's backup list (one decimal: a tenth of a day ends every 8,640 s).

=cut

use strict;
use warnings;

use Cwd qw(abs_path);
use Data::Dumper ();
use File::Basename qw(dirname);
use File::Path qw(make_path);
use POSIX ();
use Time::HiRes qw(sleep);
use FcgiSpawn::Apps::Fixture qw(run_cmd write_file copy_exact copy_tree);

my $PKG    = '/usr/share/backuppc';
my $SERVER = abs_path(dirname(__FILE__) . '/../../../apps/backuppc/server.pl');
my $SECRET = 'fcgi-spawn-suite';

# 2023-05-15 00:00:00 UTC: the fixture's "today".
my $T0 = 1684108800;

# Servers started by this process (pid => socket), stopped at its end.
my %SERVERS;
my $STARTER = $$;

sub setup {
    my ($tmp) = @_;
    my %app = (name => 'backuppc', sources => []);
    for my $file ("$PKG/lib/realindex.cgi", "$PKG/lib/BackupPC/Lib.pm", "$PKG/conf/config.pl") {
        return { %app, skip => "$file not installed (Debian package backuppc)" } unless -f $file;
    }
    my %dir = (conf => "$tmp/conf", install => "$tmp/install", data => "$tmp/data", run => "$tmp/run");
    my %paths = ('/etc/backuppc' => $dir{conf}, $PKG => $dir{install}, '/var/lib/backuppc' => $dir{data},
                 '/run/backuppc' => $dir{run});
    copy_tree("$PKG/lib", "$dir{install}/lib", \%paths);
    copy_tree("$PKG/conf", $dir{conf}, \%paths);
    make_path($dir{run}, "$dir{data}/log", map { "$dir{data}/pc/$_" } qw(alpha beta gamma));
    # The CGI where BackupPC's own installer puts it ($Conf{CgiDir}), the
    # daemon's only root: its modules are reached through its `use lib`.
    my $script = copy_exact("$dir{install}/lib/realindex.cgi", "$dir{install}/cgi-bin/index.cgi");

    write_config(\%dir);
    write_state(\%dir);
    start_server("$dir{run}/BackupPC.sock");

    my $req = sub {
        my ($name, $user, $query) = @_;
        return {
            name        => "backuppc $name",
            script      => $script,
            script_name => '/backuppc/index.cgi',
            query       => $query,
            params      => { HTTP_HOST => 'backup.example.org', REMOTE_USER => $user },
            mask        => [
                # timeStamp2(time): "This status was generated at ..."
                qr/(?<=generated at )\d{4}-\d\d-\d\d \d\d:\d\d/,
                # Ages in days: the summary's one-decimal cells (sizes and
                # speeds have two), a backup list's cell after the duration.
                qr{<td align="center" class="border">\K\d+\.\d(?=</td>)},
                qr{data-date_format="\d"> [^<]+ </td>\n\s*<td align="right" class="border">\s+[\d.]+ </td>\n\s*<td align="right" class="border">\s+\K\d+\.\d(?= </td>)},
            ],
        };
    };
    my @pages = (
        $req->('server status', 'admin', 'action=status'),
        $req->('server status, not admin', 'carol', 'action=status'),
        $req->('host summary', 'admin', 'action=summary'),
        $req->('host alpha (de)', 'carol', 'host=alpha'),
        $req->('host beta (fr)', 'dave', 'host=beta'),
        $req->('host gamma (en)', 'admin', 'host=gamma'),
        $req->('host alpha refused to erin (de)', 'erin', 'host=alpha'),
        $req->('queues', 'admin', 'action=queue'),
        $req->('server LOG', 'admin', 'action=view&type=LOG'),
        $req->('LOG list of alpha', 'carol', 'action=LOGlist&host=alpha'),
        $req->('LOG of alpha', 'carol', 'action=view&type=LOG&host=alpha&num=052023'),
        $req->('config file of alpha', 'admin', 'action=view&type=config&host=alpha'),
        $req->('restore details of alpha', 'carol', 'action=restoreInfo&host=alpha&num=0'),
        $req->('config editor for beta', 'admin', 'action=editConfig&host=beta'),
    );
    return {
        %app,
        roots   => ["$dir{install}/cgi-bin"],
        sources => [ { name => 'backuppc pages', ordered => 0, requests => \@pages } ],
    };
}

sub write_config {
    my ($dir) = @_;
    my $user = getpwuid $>;
    my $config = "$dir->{conf}/config.pl";
    open my $fh, '>>', $config or die "append to $config: $!";
    print {$fh} <<"CONF";

# The fcgi-spawn suite's settings.
\$Conf{ServerHost}       = 'backup.example.org';
\$Conf{ServerMesgSecret} = '$SECRET';
\$Conf{BackupPCUser}     = '$user';
\$Conf{CgiAdminUsers}    = 'admin';
\$Conf{CgiURL}           = 'http://backup.example.org/backuppc/index.cgi';
\$Conf{Language}         = 'en';
CONF
    close $fh or die "close $config: $!";
    write_file("$dir->{conf}/hosts", <<'HOSTS');
host        dhcp    user    moreUsers
alpha       0       carol
beta        0       dave    carol
gamma       0       erin
HOSTS
    write_file("$dir->{conf}/alpha.pl", "\$Conf{Language} = 'de';\n\$Conf{FullKeepCnt} = [4, 0, 2];\n1;\n");
    write_file("$dir->{conf}/beta.pl",
        "\$Conf{Language} = 'fr';\n\$Conf{CgiDateFormatMMDD} = 0;\n\$Conf{XferMethod} = 'tar';\n1;\n");
}

# Backups, restores and LOG files, written by BackupPC's own library where
# it has a writer.
sub write_state {
    my ($dir) = @_;
    my $day = sub { $T0 + 86400 * $_[0] };
    my @alpha = map {
        my ($num, $type, $when) = @$_;
        backup($num, $type, $day->($when), 1800 + 60 * $num, 1000 + 13 * $num, 52428800 + 1048576 * $num,
            xferErrs => $num == 3 ? 2 : 0, keep => $num == 0 ? 1 : 0, comment => $num == 0 ? 'first full' : '');
    } [0, 'full', -30], [1, 'incr', -29], [2, 'incr', -28], [3, 'full', -23], [4, 'incr', -1];
    my @beta = (backup(0, 'full', $day->(-10), 7200, 20000, 1073741824, xferMethod => 'tar'));
    my @restore = ({ num => 0, startTime => $day->(-5), endTime => $day->(-5) + 60, result => 'ok', errorMsg => '',
        nFiles => 12, size => 34567, tarCreateErrs => 0, xferErrs => 0 });
    my $dump = Data::Dumper->new([ { alpha => \@alpha, beta => \@beta, restore => \@restore } ], ['state']);
    $dump->Indent(1)->Sortkeys(1);
    run_cmd([$^X, "-I$dir->{install}/lib", '-e', <<"PERL"]);
use strict;
use BackupPC::Lib;
my \$state;
@{[ $dump->Dump ]}
my \$bpc = BackupPC::Lib->new or die "BackupPC::Lib->new failed\\n";
\$bpc->BackupInfoWrite('alpha', \@{ \$state->{alpha} });
\$bpc->BackupInfoWrite('beta', \@{ \$state->{beta} });
\$bpc->RestoreInfoWrite('alpha', \@{ \$state->{restore} });
PERL
    # The restore request, as BackupPC::CGI::Restore writes it.
    my $req = Data::Dumper->new([ { num => 3, reqTime => $day->(-5) - 120, user => 'carol', hostSrc => 'alpha',
        hostDest => 'alpha', shareSrc => '/home', shareDest => '/home', pathHdrSrc => '/carol',
        pathHdrDest => '/carol/restored', fileList => ['/carol/notes.txt', '/carol/Projekte'] } ], ['*RestoreReq']);
    $req->Indent(1)->Sortkeys(1);
    write_file("$dir->{data}/pc/alpha/RestoreInfo.0", $req->Dump);
    write_file("$dir->{data}/log/LOG", join '', map { "2023-05-15 $_\n" }
        '00:00:01 Running 2 BackupPC_nightly jobs from 0..15 (out of 0..15)',
        '00:00:01 Next wakeup is 2023-05-15 01:00:00',
        '00:15:00 Started incr backup on alpha (pid=5050, share=/home)',
        '00:30:00 Started full backup on beta (pid=5151, share=/)',
        '00:49:00 Finished incr backup on alpha',
        '01:00:00 Next wakeup is 2023-05-15 02:00:00');
    write_file("$dir->{data}/pc/alpha/LOG.052023", join '', map { "2023-05-$_\n" }
        '14 00:00:00 incr backup started for directory /home',
        '14 00:34:00 incr backup 4 complete, 104 files, 9437184 bytes, 0 xferErrs (0 bad files, 0 bad shares, 0 other)',
        '15 00:15:00 incr backup started for directory /home');
    # The pages show modification times: every file of the fixture gets
    # the fixture's "today".
    for my $file (glob("$dir->{conf}/*"), glob("$dir->{data}/log/*"), glob("$dir->{data}/pc/*/*")) {
        utime $T0 + 3600, $T0 + 3600, $file or die "utime $file: $!";
    }
}

sub backup {
    my ($num, $type, $start, $secs, $files, $size, %more) = @_;
    return {
        num => $num, type => $type, startTime => $start, endTime => $start + $secs,
        nFiles => $files, size => $size, nFilesExist => int($files * 0.9), sizeExist => int($size * 0.8),
        nFilesNew => $files - int($files * 0.9), sizeNew => $size - int($size * 0.8),
        xferErrs => 0, xferBadFile => 0, xferBadShare => 0, tarErrs => 0, compress => 3,
        sizeExistComp => int($size * 0.4), sizeNewComp => int($size * 0.1),
        noFill => $type eq 'incr' ? 1 : 0, fillFromNum => -1, mangle => 1, xferMethod => 'rsync',
        level => $type eq 'full' ? 0 : 1, charset => '', version => '4.4.0', inodeLast => 5000 + $num,
        keep => 0, share2path => '', comment => '',
        %more,
    };
}

sub start_server {
    my ($socket) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        exec { $^X } $^X, $SERVER, $socket, $STARTER, $SECRET or POSIX::_exit(127);
    }
    $SERVERS{$pid} = $socket;
    for (1 .. 100) {
        return $pid if -S $socket;
        die "the BackupPC stand-in ($SERVER) exited with status $?\n" if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    die "the BackupPC stand-in did not listen on $socket within 5 s\n";
}

END {
    if ($$ == $STARTER) {
        local $?;
        for my $pid (keys %SERVERS) {
            kill 'TERM', $pid;
            waitpid $pid, 0;
        }
    }
}

1;
