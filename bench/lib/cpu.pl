#!/usr/bin/perl
# bench/lib/cpu.pl: how much CPU other people's processes used during a
# measurement, so that a reader can tell a quiet run from a loaded one.
#
#   cpu.pl snapshot > FILE            the machine's CPU ticks and every
#                                     process's (pid ppid start ticks)
#   cpu.pl others BEFORE AFTER ROOT   "N%": of all cores' time in between,
#                                     the part used by processes that are not
#                                     ROOT or its descendants
#
# A process's ticks are utime+stime+cutime+cstime, so children it reaped
# count for it; a process that ended in between moved its ticks to its
# reaper, so they are taken off again. Measured from the others' side: our
# own short-lived children (fcgiwrap's per-request perl, reaped with SIGCHLD
# ignored) leave no trace anywhere and must not count as someone else's.
# An approximation (a process that starts and ends in between, or is reaped
# by no one, is missed), good enough to tell a quiet run from a loaded one.
use strict;
use warnings;

my $cmd = shift // '';
if    ($cmd eq 'snapshot') { snapshot() }
elsif ($cmd eq 'others')   { others(@ARGV) }
else                       { die "usage: $0 snapshot | others BEFORE AFTER ROOT\n" }

sub snapshot {
    open my $stat, '<', '/proc/stat' or die "/proc/stat: $!\n";
    my (undef, @t) = split ' ', scalar <$stat>;
    my $total = 0;
    $total += $_ for @t;
    print "cpu $total\n";
    for my $dir (glob '/proc/[0-9]*') {
        open my $fh, '<', "$dir/stat" or next;
        my $line = <$fh> // next;
        my ($pid, $rest) = $line =~ /^(\d+) \(.*\) (.*)$/s or next;
        my @f = split ' ', $rest;    # f[0] is field 3 (state)
        print join(' ', $pid, $f[1], $f[19], $f[11] + $f[12] + $f[13] + $f[14]), "\n";
    }
}

sub others {
    my ($before, $after, $root) = @_;
    my ($t0, $p0) = read_snapshot($before);
    my ($t1, $p1) = read_snapshot($after);
    my %ours = map { $_ => 1 } descendants($root, $p0, $p1);
    my $others = 0;
    for my $key (keys %$p1) {    # alive at the end: what it used since
        next if $ours{ $p1->{$key}{pid} };
        $others += $p1->{$key}{ticks} - ($p0->{$key} ? $p0->{$key}{ticks} : 0);
    }
    for my $key (keys %$p0) {    # gone: its parent's cutime grew by all of
        next if $p1->{$key} || $ours{ $p0->{$key}{pid} };    # its ticks
        $others -= $p0->{$key}{ticks};
    }
    my $dt = $t1 - $t0;
    print $dt > 0 ? sprintf("%.0f%%\n", 100 * max0($others) / $dt) : "?\n";
}

sub max0 { $_[0] < 0 ? 0 : $_[0] }

# read_snapshot FILE -> (total ticks, { "pid:start" => { ppid, ticks } })
sub read_snapshot {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    my ($total, %p);
    while (<$fh>) {
        my @f = split;
        if ($f[0] eq 'cpu') { $total = $f[1]; next }
        $p{"$f[0]:$f[2]"} = { pid => $f[0], ppid => $f[1], ticks => $f[3] };
    }
    return ($total, \%p);
}

# ROOT and every process below it in either snapshot.
sub descendants {
    my ($root, @snaps) = @_;
    my %kids;
    for my $s (@snaps) { push @{ $kids{ $_->{ppid} } }, $_->{pid} for values %$s }
    my (@todo, %seen) = ($root);
    while (defined(my $pid = shift @todo)) {
        next if $seen{$pid}++;
        push @todo, @{ $kids{$pid} || [] };
    }
    return keys %seen;
}
