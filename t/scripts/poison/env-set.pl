#!/usr/bin/perl
# %ENV changed: a variable added, PATH replaced, LANG removed.
use strict;
use warnings;

$ENV{POISON_ENV} = 'leaked';
$ENV{PATH} = '/nonexistent/poison-path';
delete $ENV{LANG};
print "Content-Type: text/plain\n\nenv changed\n";
