#!/usr/bin/perl
# FCGI::Spawn-style peer: FCGI + FCGI::ProcManager (N workers) + CGI::Fast,
# and `do $script` every request, as FCGI::Spawn's default callout does.
# As with FCGI::Spawn's CGI.pm patch, CGI->new in the script returns the
# request's CGI::Fast object (CGI::Fast already read the POST body), and
# exit() ends the request. "Subroutine redefined" warnings (every request
# recompiles the script's named subs into main::) are dropped.
#
#   fcgi-spawn-style.pl --listen SOCK --nproc N [--preload MODULE]...
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BenchPeer;
use CGI::Fast;

my $opt = BenchPeer::parse_args(@ARGV);
BenchPeer::preload($opt->{preload});
my $sock = BenchPeer::open_socket($opt->{listen});
$CGI::Fast::Ext_Request = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%ENV, $sock);
my $pm = BenchPeer::manage($opt->{nproc});

my $cgi_new = \&CGI::new;
$SIG{__WARN__} = sub { warn @_ unless $_[0] =~ /^Subroutine \S+ redefined/ };

while (my $q = CGI::Fast->new) {
    $pm->pm_pre_dispatch;
    my $script = $ENV{SCRIPT_FILENAME};
    {
        no warnings 'redefine';
        local *CGI::new = sub { @_ > 1 ? $cgi_new->(@_) : $q };
        local $0 = $script;
        local $BenchPeer::IN_SCRIPT = 1;
        local @ARGV = ();
        package main;
        do $script;
    }
    warn $@ if $@ && $@ ne $BenchPeer::EXIT;
    $pm->pm_post_dispatch;
}
