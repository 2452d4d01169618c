#!/usr/bin/perl
# What a child process sees of the environment: the request's params and
# the script's own changes to %ENV.
use strict;
use warnings;
$ENV{SET_BY_SCRIPT} = 'yes-' . ($ENV{QUERY_STRING} // '');
print "Content-Type: text/plain\n\n";
print `sh -c 'echo "child QUERY_STRING=\$QUERY_STRING"; echo "child SET_BY_SCRIPT=\$SET_BY_SCRIPT"; echo "child LEFT_OVER=\${LEFT_OVER:-unset}"'`;
$ENV{LEFT_OVER} = 'from-an-earlier-request';
