#!/usr/bin/perl
# The loop of a "FastCGI-ready" script: under CGI its body runs once, with
# this request's parameters, and CGI::Fast->new then returns undef. Also
# sets CGI::Fast's file handles, a setting of its own that must not reach
# the next script.
use strict;
use warnings;
use CGI::Fast;

CGI::Fast->file_handles({ fcgi_error_file_handle => \*STDERR });
my $n = 0;
while (my $q = CGI::Fast->new) {
    $n++;
    print $q->header('text/plain'), "n=$n name=", ($q->param('name') // '(none)'), "\n";
}
print "after the loop: n=$n\n";
