#!/usr/bin/perl
# The benchmark's POST: a form field of about 1 MB, read with CGI.pm.
use strict;
use warnings;
use CGI;
my $q    = CGI->new;
my $data = $q->param('data') // '';
my $xs   = ($data =~ tr/x//);
print $q->header('text/plain'), "post.pl: data ", length($data), " bytes, $xs x\n";
