#!/usr/bin/perl
# A stand-in for the BackupPC server (/usr/share/backuppc/bin/BackupPC) for
# the suite's BackupPC fixture (t/lib/FcgiSpawn/Apps/Backuppc.pm): it listens
# on the server's unix socket and answers the CGI's messages the way the
# real server does (a seed line on connect, one reply line per message
# whose MD5 digest checks, `status ...` as a Data::Dumper dump of %Info,
# %Jobs, %Status, the queues), from a fixed state: the same bytes for every
# request, so two runs of a page agree. The real server schedules backups,
# pings hosts and stamps its state with the current time and its pid.
#
# Usage: server.pl SOCKET PARENT_PID SECRET
# Exits when PARENT_PID is gone (the test that started it) or on TERM.
use strict;
use warnings;

use Data::Dumper ();
use Digest::MD5 ();
use Encode qw(encode_utf8);
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

my ($path, $parent, $secret) = @ARGV;
die "usage: $0 SOCKET PARENT_PID [SECRET]\n" unless defined $parent;
$secret = '' unless defined $secret;

# 2023-05-15 00:00:00 UTC and hours after it.
my $T0 = 1684108800;
my $h  = sub { $T0 + 3600 * $_[0] };

my %Info = (
    pid                 => 4242,
    Version             => '4.4.0',
    startTime           => $h->(-48),
    ConfigLTime         => $h->(-48),
    nextWakeup          => $h->(2),
    DUlastValue         => 42,
    DUlastValueTime     => $h->(1),
    DUDailyMax          => 57,
    DUDailyMaxTime      => $h->(-20),
    DUInodelastValue    => 7,
    DUInodeDailyMax     => 9,
    DUInodeDailyMaxTime => $h->(-20),
    cpool4FileCnt       => 18230,
    cpool4DirCnt        => 4352,
    cpool4Kb            => 5242880,
    cpool4KbRm          => 2048,
    cpool4FileCntRm     => 12,
    cpool4FileRepeat    => 3,
    cpool4FileRepMax    => 2,
    cpool4FileLinkMax   => 0,
    cpool4Time          => $h->(-23),
);
my %Status = (
    alpha => { state => 'Status_idle', reason => 'Reason_backup_done', type => 'incr',
               startTime => $h->(-1), endTime => $h->(-0.5), aliveCnt => 12, deadCnt => 0 },
    beta  => { state => 'Status_backup_in_progress', reason => 'Reason_backup_queued', type => 'full',
               startTime => $h->(0.5), userReq => 1, aliveCnt => 4, deadCnt => 0 },
    gamma => { state => 'Status_idle', reason => 'Reason_no_ping', type => 'full',
               startTime => $h->(-3), errorTime => $h->(-3), error => 'ping failed: host unreachable',
               userReq => 1, aliveCnt => 0, deadCnt => 7, backoffTime => $h->(-2) },
);
my %Jobs = (
    beta => { type => 'full', startTime => $h->(0.5), cmd => '/usr/share/backuppc/bin/BackupPC_dump -f beta',
              pid => 5151, xferPid => '5152,5153', xferState => 'xfer', xferFileCnt => 1312 },
);
my @BgQueue   = ({ host => 'gamma', user => 'BackupPC', reqTime => $h->(0.25) });
my @UserQueue = ({ host => 'alpha', user => 'carol', reqTime => $h->(0.75), backupType => 'incr' });
my @CmdQueue  = ();

my $listener = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 8)
    or die "$0: listen on $path: $!\n";
$SIG{TERM} = sub { unlink $path; exit 0 };

my $conns = 0;
my $sel = IO::Select->new($listener);
while (kill 0, $parent) {
    next unless $sel->can_read(1);
    my $client = $listener->accept or next;
    serve($client, ++$conns);
}
unlink $path;
exit 0;

sub serve {
    my ($client, $n) = @_;
    my $seed = "$T0,$n,$Info{pid},0\n";
    syswrite $client, $seed;
    my $count = 0;
    my $in = IO::Select->new($client);
    while ($in->can_read(30)) {
        my $line = <$client>;
        last unless defined $line;
        chomp $line;
        my ($digest, $mesg) = $line =~ /^(\S+) (.*)$/ or last;
        my $md5 = Digest::MD5->new;
        $md5->add($seed . $count++ . $secret . $mesg);
        # A message whose digest does not check is refused, as the real
        # server does (it drops the client).
        last if $md5->b64digest ne $digest;
        my $reply = reply($mesg);
        $reply = encode_utf8($reply) . "\n";
        syswrite $client, $reply;
    }
    close $client;
}

sub reply {
    my ($mesg) = @_;
    return 'ok' unless $mesg =~ /^status\s*(.*)/;
    my (@values, @names);
    for my $type (split /\s+/, $1) {
        if ($type =~ /^queues/) {
            push @values, \@BgQueue, \@UserQueue, \@CmdQueue;
            push @names, qw(*BgQueue *UserQueue *CmdQueue);
        }
        elsif ($type =~ /^jobs/) {
            push @values, \%Jobs;
            push @names, '*Jobs';
        }
        elsif ($type =~ /^queueLen/) {
            push @values, { BgQueue => scalar @BgQueue, UserQueue => scalar @UserQueue, CmdQueue => scalar @CmdQueue };
            push @names, '*QueueLen';
        }
        elsif ($type =~ /^info/) {
            push @values, \%Info;
            push @names, '*Info';
        }
        elsif ($type =~ /^hosts/) {
            push @values, \%Status;
            push @names, '*Status';
        }
        elsif ($type =~ /^host\((.*)\)/) {
            (my $host = $1) =~ s/%(..)/chr hex $1/ge;
            next unless $Status{$host};
            push @values, { %{ $Status{$host} }, BgQueueOn => 0, UserQueueOn => 0, CmdQueueOn => 0, Job => $Jobs{$host} };
            push @names, '*StatusHost';
        }
    }
    my $dump = Data::Dumper->new(\@values, \@names);
    $dump->Indent(0);
    $dump->Sortkeys(1);
    return $dump->Dump;
}
