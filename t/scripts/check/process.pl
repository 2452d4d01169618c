#!/usr/bin/perl
# Process state: umask, cwd, $0, @ARGV, %SIG entries that are set, a pending
# alarm, the time zone libc uses, whether time() is the real one.
use strict;
use warnings;
use Cwd ();
use POSIX ();

my ($script_dir) = __FILE__ =~ m{\A(.*)/};
my $cwd = Cwd::getcwd();
# fcgi-spawn ends a script whose client went away through a perl handler on
# SIGPIPE (where a CGI process would die of the signal): a code ref there is
# the daemon's, not left by a script; other values of PIPE are compared.
my @sig = map { "$_=" . (ref $SIG{$_} ? 'CODE' : $SIG{$_}) }
    grep { defined $SIG{$_} && !($_ eq 'PIPE' && ref $SIG{$_}) } sort keys %SIG;
my $pending = alarm 0;
alarm $pending if $pending;    # read, not cancelled
my $r = sprintf "umask=%04o\n", umask;
$r .= 'cwd=' . ($cwd eq $script_dir ? 'the script directory' : $cwd) . "\n";
$r .= "dollar0=$0\n";
$r .= 'argv=' . join('|', @ARGV) . "\n";
$r .= 'sig=' . join(' ', @sig) . "\n";
$r .= "pending_alarm=$pending\n";
$r .= 'localtime_of_epoch=' . POSIX::strftime('%Y-%m-%d %H:%M:%S %Z', localtime 0) . "\n";
$r .= 'time_is_real=' . (time > 1_000_000_000 ? 'yes' : 'no') . "\n";
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
