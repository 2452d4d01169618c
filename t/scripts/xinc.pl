#!/usr/bin/perl
# FCGI::Spawn::xinc: the loader runs once per worker until the file changes.
# Each run of the loader appends a line to FILE.loads, so the test can count.
use strict;
use warnings;
use FCGI::Spawn;
my $file = $ENV{QUERY_STRING};
my $value = FCGI::Spawn::xinc($file, sub {
    open my $log, '>>', "$_[0].loads" or die "$_[0].loads: $!";
    print {$log} "loaded\n";
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
});
print "Content-Type: text/plain\n\n";
print "persistent=", ($FCGI::Spawn::PERSISTENT ? 1 : 0), "\n";
print "value=$value\n";
