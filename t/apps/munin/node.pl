#!/usr/bin/perl
# A munin node for the suite's Munin fixture (t/lib/FcgiSpawn/Apps/Munin.pm),
# run by munin-update itself through `address cmd:///path/node.pl HOST`.
# It speaks the node protocol with the `spool` capability (as munin-async
# does): one `spoolfetch` answer carries every plugin's config and a day of
# timestamped values (5-minute steps from 2023-05-15 00:00 UTC), computed
# from the host name, so the RRD files and every graph drawn from them are
# the same on every run.
#
# Plugins: load (a gauge with warning/critical), cpu (stacked DERIVE
# counters), if_eth0 (in/out, out drawn negative), and diskstats_latency, a
# multigraph plugin with a nested graph per disk.
use strict;
use warnings;

my ($host) = @ARGV;
die "usage: $0 HOSTNAME\n" unless defined $host;

my $T0    = 1684108800;
my $STEPS = 288;
my $seed  = 0;
$seed += ord for split //, $host;

$| = 1;
print "# munin node at $host\n";
while (my $line = <STDIN>) {
    $line =~ s/\s+\z//;
    if ($line =~ /^cap\b/) {
        print "cap multigraph dirtyconfig spool\n";
    }
    elsif ($line =~ /^spoolfetch\b/) {
        print spool(), ".\n";
    }
    elsif ($line eq 'quit') {
        last;
    }
    else {
        print "# Unknown command. Try cap, spoolfetch, quit\n.\n";
    }
}
exit 0;

sub series {
    my ($field, $value) = @_;
    return join '', map { sprintf "%s.value %d:%s\n", $field, $T0 + 300 * $_, $value->($_) } 0 .. $STEPS - 1;
}

sub spool {
    my $out = <<'CONF';
multigraph load
graph_title Load average
graph_args --base 1000 -l 0
graph_vlabel load
graph_scale no
graph_category system
graph_info The load average of the machine.
load.label load
load.warning 1.5
load.critical 3
load.info 5 minute load average
CONF
    $out .= series('load', sub { sprintf '%.2f', 0.2 + (($_[0] * 7 + $seed) % 40) / 16 });

    $out .= <<'CONF';
multigraph cpu
graph_title CPU usage
graph_order system user idle
graph_args --base 1000 -r --lower-limit 0 --upper-limit 200
graph_vlabel %
graph_scale no
graph_category system
graph_period second
system.label system
system.type DERIVE
system.min 0
system.draw AREA
user.label user
user.type DERIVE
user.min 0
user.draw STACK
idle.label idle
idle.type DERIVE
idle.min 0
idle.draw STACK
CONF
    $out .= series('system', sub { 3000 * $_[0] + ($_[0] * $seed) % 900 });
    $out .= series('user',   sub { 9000 * $_[0] + ($_[0] * 13) % 2400 });
    $out .= series('idle',   sub { 48000 * $_[0] });

    $out .= <<'CONF';
multigraph if_eth0
graph_title eth0 traffic
graph_order down up
graph_args --base 1000
graph_vlabel bits in (-) / out (+) per second
graph_category network
down.label received
down.type DERIVE
down.graph no
down.cdef down,8,*
down.min 0
up.label bps
up.type DERIVE
up.negative down
up.cdef up,8,*
up.min 0
CONF
    $out .= series('down', sub { 150000 * $_[0] + ($_[0] * $seed * 31) % 50000 });
    $out .= series('up',   sub { 40000 * $_[0] + ($_[0] * 17) % 9000 });

    $out .= <<'CONF';
multigraph diskstats_latency
graph_title Disk latency per device
graph_args --base 1000
graph_vlabel Average IO Wait (seconds)
graph_category disk
sda_avgwait.label sda
sda_avgwait.type GAUGE
sda_avgwait.min 0
sdb_avgwait.label sdb
sdb_avgwait.type GAUGE
sdb_avgwait.min 0
CONF
    $out .= series('sda_avgwait', sub { sprintf '%.4f', (($_[0] + $seed) % 11) / 1000 });
    $out .= series('sdb_avgwait', sub { sprintf '%.4f', (($_[0] * 3) % 7) / 1000 });
    for my $disk (qw(sda sdb)) {
        $out .= <<"CONF";
multigraph diskstats_latency.$disk
graph_title Average latency for /dev/$disk
graph_args --base 1000 --logarithmic
graph_vlabel seconds
graph_category disk
avgrdwait.label Read IO Wait time
avgrdwait.type GAUGE
avgrdwait.min 0
avgwrwait.label Write IO Wait time
avgwrwait.type GAUGE
avgwrwait.min 0
CONF
        my $k = $disk eq 'sda' ? 5 : 9;
        $out .= series('avgrdwait', sub { sprintf '%.4f', 0.001 + (($_[0] * $k) % 13) / 2000 });
        $out .= series('avgwrwait', sub { sprintf '%.4f', 0.002 + (($_[0] + $k) % 17) / 1000 });
    }
    return $out;
}
