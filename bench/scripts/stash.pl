#!/usr/bin/perl
# bench/soak's probe: what the interpreter running this request holds, as
# counted from inside it. It walks every stash from main:: down and prints
# key=value lines: the worker's pid (in fork isolation the request runs in
# a child, so the parent's pid too), the number of entries in %main::, of
# packages and of symbols in all, the same under FCGI::Spawn::Sandbox::
# (the packages scripts are compiled into) and the files in %INC.
# ?hold=SECS keeps the worker busy that long first, so probes sent at once
# reach different workers. No named subs: registry keeps it compiled as is.
use strict;
use warnings;
use Time::HiRes ();

my ($hold) = ($ENV{QUERY_STRING} || '') =~ /hold=([\d.]+)/;
Time::HiRes::sleep($hold) if $hold;

my %count = (packages => 0, symbols => 0, sandbox_packages => 0, sandbox_symbols => 0);
my @todo = (['main::', 0]);
while (my $next = shift @todo) {
    my ($name, $in_sandbox) = @$next;
    my $stash = do { no strict 'refs'; \%{$name} };
    $count{packages}++;
    $count{sandbox_packages}++ if $in_sandbox;
    for my $key (keys %$stash) {
        $count{symbols}++;
        $count{sandbox_symbols}++ if $in_sandbox;
        next unless $key =~ /::\z/ && $key ne 'main::';
        my $full = $name eq 'main::' ? $key : "$name$key";
        push @todo, [$full, $in_sandbox || $full eq 'FCGI::Spawn::Sandbox::'];
    }
}

print "Content-Type: text/plain\n\n";
print "pid=$$\n";
print 'ppid=', getppid(), "\n";
print 'main_keys=', scalar(keys %main::), "\n";
print "$_=$count{$_}\n" for sort keys %count;
print 'inc=', scalar(keys %INC), "\n";
