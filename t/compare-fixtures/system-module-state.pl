#!/usr/bin/perl
# Keeps state where fcgi-spawn documents that it stays: in a module from
# the system @INC, which is the worker's and shared by every script it runs
# (README, "CGI semantics"). Under plain CGI each run is a new process and
# the list has one entry; on a warm worker the previous runs' entries are
# still there, so the second run prints 2. compare and Test::FCGI::Spawn
# must show that on a warm worker (t/61-compare.t, t/52-warm-runs.t). Kept
# out of t/scripts: the differential suite would rightly fail on it.
use strict;
use warnings;
use Text::Abbrev ();

no warnings 'once';
push @Text::Abbrev::runs_in_this_process, 1;
print "Content-Type: text/plain\n\n";
print 'runs in this process: ', scalar(@Text::Abbrev::runs_in_this_process), "\n";
