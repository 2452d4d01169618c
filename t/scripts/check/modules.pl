#!/usr/bin/perl
# Subs of modules a poisoner may redefine: CGI::header, File::Basename, and
# built-ins overridden through CORE::GLOBAL (CGI::Carp's fatalsToBrowser
# overrides die that way).
use strict;
use warnings;
use CGI ();
use File::Basename ();

my $r = 'basename=' . File::Basename::basename('/a/b/c.txt') . "\n";
(my $h = CGI->new->header('text/plain')) =~ s/\r\n/\\r\\n/g;
$r .= "cgi_header=$h\n";
{
    no strict 'refs';
    for my $f (qw(die warn exit time sleep)) {
        $r .= "core_global_$f=" . (defined &{"CORE::GLOBAL::$f"} ? 'overridden' : 'built-in') . "\n";
    }
}
$r .= 'time_is_real=' . (time > 1_000_000_000 ? 'yes' : 'no') . "\n";
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
