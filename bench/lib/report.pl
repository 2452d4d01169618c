#!/usr/bin/perl
# bench/lib/report.pl: turns bench/run's records into the Markdown report
# and the PNG chart (gnuplot).
#
#   report.pl --meta FILE --results FILE --md OUT.md --png OUT.png
#             --scripts "a b" --contenders "x y" --conns "2 8"
#
# Records (tab-separated), from bench/run:
#   R script contender conns requests rps p50_us p99_us bad errors
#   M script contender workers pss_kb private_kb
#   N script contender reason
#   S script contender seconds-to-first-good-response
#   L script contender conns load-average
#   G page contender requests workers pss_kb private_kb max_private_kb bad
#   T startup fcgi-spawn first_response_ms all_workers_ms
#   X mixed contender conns alone_p50_us alone_p99_us p50_us p99_us rps slow_done bad errors
use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use List::Util qw(min max);
use File::Temp qw(tempdir);

GetOptions(\my %opt, 'meta=s', 'results=s', 'md=s', 'png=s', 'scripts=s',
    'contenders=s', 'conns=s', 'workers=s') or exit 2;
my @scripts    = split ' ', $opt{scripts};
my @contenders = split ' ', $opt{contenders};
my @conns      = split ' ', $opt{conns};
my @spawn      = grep { /^spawn-/ } @contenders;
my $workers    = $opt{workers} // '?';
my @peers      = grep { !/^spawn-/ } @contenders;

my %meta = read_tsv_pairs($opt{meta});
my %label = map { $_ => $meta{"label $_"} // $_ } @contenders;
my (%run, %mem, %na, %ready, %load, %lost, @loads, %long, @startup, %mixed);
for my $r (read_records($opt{results})) {
    my ($kind, $s, $c, @v) = @$r;
    if    ($kind eq 'R') { $run{$s}{$c}{ $v[0] } = { req => $v[1], rps => $v[2], p50 => $v[3], p99 => $v[4], bad => $v[5], err => $v[6] } }
    elsif ($kind eq 'M') { $mem{$s}{$c} = { n => $v[0], pss => $v[1], priv => $v[2] } }
    elsif ($kind eq 'N') { $na{$s}{$c} = $v[0] }
    elsif ($kind eq 'S') { $ready{$s}{$c} = $v[0] }
    elsif ($kind eq 'G') { $long{$s}{$c}{ $v[0] } = { n => $v[1], pss => $v[2], priv => $v[3], max => $v[4], bad => $v[5] } }
    elsif ($kind eq 'T') { @startup = @v }
    elsif ($kind eq 'X') {
        @{ $mixed{$c} }{qw(n alone50 alone99 p50 p99 rps slow bad err)} = @v;
    }
    elsif ($kind eq 'L') {
        push @loads, $v[1] =~ s/%//r if $v[1] =~ /\d/;
        $load{$s}{$c}{ $v[0] } = $v[1];
        $lost{$s}{$c}{ $v[0] } = $v[2] // 0;
    }
}

my %title = (
    hello  => 'CGI.pm hello world',
    page   => 'typical page: CGI.pm + POSIX + List::Util, a 200-row HTML table',
    big    => 'a generated 5,000-line script (compile cost)',
    post   => 'POST of a 1 MiB urlencoded form field, read with CGI.pm',
    output => 'a 5 MiB response',
    gitweb => "gitweb's summary page (Debian's gitweb.cgi, 8,500 lines) of a 20-commit repository",
);

open my $md, '>', $opt{md} or die "$opt{md}: $!\n";
select $md;
print_header();
print_summary();
print_targets() if @spawn;
print_script($_) for @scripts;
print_mixed() if %mixed || %{ $na{mixed} // {} };
print_long() if %long;
print_notes();
close $md;
select STDOUT;
chart($opt{png});

# ------------------------------------------------------------------ output

sub print_header {
    print "# fcgi-spawn against its peers (bench/run)\n\n";
    print "- **Run**: $meta{started} to $meta{finished}\n";
    print "- **Machine**: $meta{machine}\n";
    print "- **Perl**: $meta{perl}\n";
    print "- **fcgi-spawn**: $meta{'fcgi-spawn'}\n";
    print "- **Settings**: $meta{settings}\n";
    my $range = @loads ? sprintf('; during the measurements, processes not of this bench used %d%% to %d%% of the machine (median %d%%, column "others\' CPU")',
        min(@loads), max(@loads), (sort { $a <=> $b } @loads)[$#loads / 2]) : '';
    print "- **Load**: $meta{load}$range. The machine is shared: other jobs' CPU use lowers the figures, so compare ratios rather than absolute numbers.\n";
    print "- **Packages** (Debian): $meta{packages}\n\n";
    print "Chart: `", ($opt{png} =~ s{.*/}{}r), "` (requests/s, log scale).\n\n";
}

sub print_summary {
    for my $n ($conns[-1]) {
        print "## Summary: requests/s at $n connections\n\n";
        print '| contender | ', join(' | ', @scripts), " |\n";
        print '|---|', join('|', map { '---:' } @scripts), "|\n";
        for my $c (@contenders) {
            print "| $label{$c} | ", join(' | ', map { summary_cell($_, $c, $n) } @scripts), " |\n";
        }
        print "\n";
    }
}

# The targets of issue #3, each computed from this run's records.
sub print_targets {
    my $n = $conns[-1];
    my @rows;
    my $rps = sub { my $r = result(@_); $r && !failed($r) ? $r->{rps} : undef };
    my $ratio_row = sub {
        my ($what, $s, $mine, $peer, $want) = @_;
        return unless grep { $_ eq $s } @scripts and grep { $_ eq $peer } @contenders
            and grep { $_ eq $mine } @contenders;
        my ($a, $b) = ($rps->($s, $mine, $n), $rps->($s, $peer, $n));
        my $got = defined $a && defined $b && $b > 0 ? $a / $b : undef;
        push @rows, [$what, sprintf('≥ %.1f×', $want),
            defined $got ? sprintf('%.2f× (%s vs %s req/s)', $got, rps($a), rps($b)) : 'n/a',
            verdict(defined $got && $got >= $want)];
    };
    $ratio_row->('hello: registry ÷ ModPerl::Registry', 'hello', 'spawn-registry', 'modperl-registry', 1.5);
    $ratio_row->('hello: registry ÷ compile-once FCGI loop', 'hello', 'spawn-registry', 'compile-once', 2);
    $ratio_row->('hello: perlrun ÷ ModPerl::PerlRun', 'hello', 'spawn-perlrun', 'modperl-perlrun', 2);
    $ratio_row->('hello: perlrun ÷ FCGI::Spawn-style `do`', 'hello', 'spawn-perlrun', 'fcgi-spawn-style', 6);
    $ratio_row->('hello: perlrun ÷ fcgiwrap', 'hello', 'spawn-perlrun', 'fcgiwrap', 100);
    $ratio_row->('page: fork ÷ fcgiwrap', 'page', 'spawn-fork', 'fcgiwrap', 20);
    if (defined(my $mine = $rps->('page', 'spawn-registry', $n)) && defined(my $loop = $rps->('page', 'perl-loop', $n))) {
        my $share = $mine / ($loop * $workers);
        push @rows, ['page: registry ÷ (perl loop × workers)', '≥ 80 %',
            sprintf('%.0f %% (%s vs %d × %s req/s)', 100 * $share, rps($mine), $workers, rps($loop)), verdict($share >= 0.8)];
    }
    # Overhead per request: a worker's time per request beyond the script
    # body's own (the perl loop's time per request).
    my $overhead = sub {
        my ($s) = @_;
        my ($mine, $loop) = ($rps->($s, 'spawn-registry', $n), $rps->($s, 'perl-loop', $n));
        return defined $mine && defined $loop && $mine > 0 && $loop > 0 ? $workers / $mine - 1 / $loop : undef;
    };
    if (defined(my $big = $overhead->('big')) && defined(my $hello = $overhead->('hello'))) {
        push @rows, ['big: registry overhead per request vs hello\'s', 'within 10 %',
            sprintf('%.0f µs vs %.0f µs (%+.0f %%)', $big * 1e6, $hello * 1e6, 100 * ($big / $hello - 1)),
            verdict($big <= $hello * 1.1)];
    }
    for my $sp (@spawn) {
        my @slow = grep { my $r = $run{$_}{$sp}{$n}; $r && $r->{p50} > 0 && $r->{p99} > 2 * $r->{p50} } @scripts;
        my @have = grep { $run{$_}{$sp}{$n} } @scripts;
        next unless @have;
        my $worst = max(map { my $r = $run{$_}{$sp}{$n}; $r->{p50} > 0 ? $r->{p99} / $r->{p50} : 0 } @have);
        push @rows, ["p99 ÷ p50 at $n connections, $label{$sp}, every script", '≤ 2',
            sprintf('worst %.2f%s', $worst, @slow ? " (over: @slow)" : ''), verdict(!@slow)];
    }
    # hello: issue 15's limit (2 MB; the compile-once loop: 1.3 MB); the
    # typical page: the first benchmark's (1.5 MB).
    for my $s (grep { $long{$_} } qw(hello page)) {
        my $limit = $s eq 'hello' ? 2 : 1.5;
        for my $sp (@spawn) {
            my $g = $long{$s}{$sp} or next;
            my ($first, $last) = sort { $a <=> $b } keys %$g;
            next unless defined $last && $first != $last;
            push @rows, ["private memory per worker after $first $s requests, $label{$sp}", "≤ $limit MB",
                sprintf('%s average, %s largest', mib($g->{$first}{priv}), mib($g->{$first}{max})),
                verdict($g->{$first}{max} * 1024 <= $limit * 1e6)];
            my $growth = $g->{$last}{max} - $g->{$first}{max};
            push @rows, ["growth from $first to $last $s requests, $label{$sp}", '≤ 256 kB',
                sprintf('%+d kB (largest worker: %s → %s)', $growth, mib($g->{$first}{max}), mib($g->{$last}{max})),
                verdict($growth <= 256)];
        }
    }
    if (@startup) {
        push @rows, ['start-up, 8 workers with the preloads: exec to first answered request', '< 300 ms',
            "$startup[0] ms (whole pool up: $startup[1] ms)", verdict($startup[0] < 300)];
    }
    print "## Targets, from this run

";
    print "| target | wanted | got | |
|---|---|---|---|
";
    print "| $_->[0] | $_->[1] | $_->[2] | $_->[3] |
" for @rows;
    print "
";
}

sub verdict { $_[0] ? 'met' : '**missed**' }

# Memory of fcgi-spawn's workers over a long run of each script.
sub print_long {
    print "## Memory over requests, fcgi-spawn

";
    print "A fresh pool per mode and script; requests straight to the daemon's socket (8 clients, a connection per request); per-worker figures from smaps_rollup right after.

";
    print "| script | mode | requests | workers | PSS (average) | Private (average) | Private (largest) | bad |
";
    print "|---|---|---:|---:|---:|---:|---:|---:|
";
    for my $s (grep { $long{$_} } qw(hello page)) {
        for my $c (grep { $long{$s}{$_} } @spawn) {
            for my $k (sort { $a <=> $b } keys %{ $long{$s}{$c} }) {
                my $g = $long{$s}{$c}{$k};
                printf "| %s | %s | %d | %d | %s | %s | %s | %s |
", $s, $label{$c}, $k, $g->{n},
                    mib($g->{pss}), mib($g->{priv}), mib($g->{max}), $g->{bad} ? "**$g->{bad}** ⚠" : 0;
            }
        }
    }
    print "
";
}

sub summary_cell {
    my ($s, $c, $n) = @_;
    return 'n/a' if $na{$s}{$c};
    my $at = '';
    my $r = result($s, $c, $n);
    if (!$r) {    # measured at other connection counts only (Apache direct)
        my ($other) = sort { $b <=> $a } grep { $_ ne '-' } keys %{ $run{$s}{$c} // {} };
        return '—' unless defined $other;
        ($r, $at) = (result($s, $c, $other), " (at $other)");
    }
    return rps($r->{rps}) . $at . (failed($r) ? ' ⚠' : '');
}

# The mixed scenario: fast requests' latency alone and beside a stream of
# slow ones.
sub print_mixed {
    print "## mixed: hello world beside a stream of 0.3 s requests\n\n";
    print "wrk requests hello.pl at 2 × workers connections (Apache direct: at N), first alone,\n";
    print "then while one more client requests slow.pl (sleeps 0.3 s) back to back. A pool where\n";
    print "a request can wait behind a busy worker while another is idle shows it in the second p99.\n\n";
    print "| contender | conns | alone p50 | alone p99 | beside slow p50 | beside slow p99 | p99 ÷ alone | req/s beside slow | slow done | bad / errors |\n";
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for my $c (@contenders) {
        if (my $why = $na{mixed}{$c}) {
            $why =~ s/\|/\\|/g;
            print "| $label{$c} | | n/a: $why | | | | | | | |\n";
            next;
        }
        my $m = $mixed{$c} or next;
        printf "| %s | %d | %s | %s | %s | %s | %s | %s | %d | %s |\n", $label{$c}, $m->{n},
            ms($m->{alone50}), ms($m->{alone99}), ms($m->{p50}), ms($m->{p99}),
            $m->{alone99} > 0 ? sprintf('%.1f×', $m->{p99} / $m->{alone99}) : '—',
            rps($m->{rps}), $m->{slow},
            ($m->{bad} || $m->{err}) ? "**$m->{bad} / $m->{err}** ⚠" : '0 / 0';
    }
    print "\n";
}

sub print_script {
    my ($s) = @_;
    print "## $s: $title{$s}\n\n";
    print "| contender | conns | req/s | p50 | p99 | bad / errors / workers lost | workers: PSS / Private each | first 200 after | others' CPU |\n";
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for my $c (@contenders) {
        if (my $why = $na{$s}{$c}) {
            $why =~ s/\|/\\|/g;
            print "| $label{$c} | | n/a | | | | | $why | |\n";
            next;
        }
        my $first = 1;
        for my $n ($c eq 'perl-loop' ? ('-') : @conns) {
            my $r = $run{$s}{$c}{$n} or next;
            my $m = $mem{$s}{$c};
            my $memcell = !$first || !$m ? ''
                : sprintf('%d: %s / %s', $m->{n}, mib($m->{pss}), mib($m->{priv}));
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                $first ? $label{$c} : '', $n eq '-' ? '—' : $n,
                rps($r->{rps}) . ($r->{req} ? '' : ' (no response)'),
                ms($r->{p50}), ms($r->{p99}),
                (failed($r) ? "**$r->{bad} / $r->{err}** ⚠" : '0 / 0')
                    . ' / ' . ($lost{$s}{$c}{$n} ? "**$lost{$s}{$c}{$n}**" : 0),
                $memcell, $first && defined $ready{$s}{$c} ? "$ready{$s}{$c} s" : '',
                $load{$s}{$c}{$n} // '';
            $first = 0;
        }
    }
    print "\n";
    print_ratios($s) if @spawn;
}

sub print_ratios {
    my ($s) = @_;
    my @cols = map { my $sp = $_; map { [$sp, $_] } @conns } @spawn;
    print "Ratios, requests/s of fcgi-spawn ÷ the peer's (> 1: fcgi-spawn is faster):\n\n";
    print '| peer | ', join(' | ', map { ($_->[0] =~ s/^spawn-//r) . " @ $_->[1]" } @cols), " |\n";
    print '|---|', join('|', map { '---:' } @cols), "|\n";
    for my $c (grep { $_ ne $spawn[0] } @contenders) {
        my @cells = map {
            my ($sp, $n) = @$_;
            my $a = result($s, $sp, $n);
            my $b = result($s, $c, $n);
            $sp eq $c ? '—'
                : ($a && $b && $b->{rps} > 0) ? sprintf('%.2f×', $a->{rps} / $b->{rps}) : 'n/a';
        } @cols;
        print "| $label{$c} | ", join(' | ', @cells), " |\n";
    }
    print "\n";
}

sub print_notes {
    print <<'NOTES';
## How each contender runs

- Every FastCGI contender sits behind its own nginx (1 worker, same
  configuration, `fastcgi_keep_conn` as in Settings) on 127.0.0.1, on a
  UNIX socket, with the same number of worker processes.
- **fcgi-spawn**: `fcgi-spawn run --workers N --isolation perlrun|registry
  --preload CGI --preload POSIX --preload List::Util --preload Data::Dumper`.
- **fcgiwrap**: `fcgiwrap -c N`; every request forks and execs perl (the
  PSS/Private shown is fcgiwrap's own processes, not the per-request perl).
- **FCGI::Spawn-style**: `bench/peers/fcgi-spawn-style.pl`: FCGI +
  FCGI::ProcManager (N) + CGI::Fast, `do $script` every request (compiled
  every request, into `main::`); `CGI->new` returns the request's CGI::Fast
  object, as FCGI::Spawn's CGI.pm patch does.
- **compiled once**: `bench/peers/compile-once.pl`: FCGI + FCGI::ProcManager
  (N), the script body compiled once per worker into a sub.
- **Plack::App::WrapCGI**: `plackup -E deployment -s FCGI --nproc N`
  with `bench/peers/wrapcgi.psgi` (CGI::Compile: compiled once per worker).
- **mod_perl**: Apache 2.4 prefork with exactly N children
  (`MaxRequestWorkers N`), ModPerl::Registry or ModPerl::PerlRun, same
  preloads (`PerlModule`), `KeepAlive On`, measured the two ways its users
  run it: **behind the same nginx** (`proxy_pass` to an `upstream` with
  `keepalive 8`, HTTP/1.1), at every connection count; and **hit directly**
  by wrk ("direct") at as many connections as it has children only, its
  best case (a prefork child held by an idle kept connection serves no one
  else, so more clients than children would wait).
- **ceiling: nginx return 200**: the same nginx answering `return 200` with
  the script's marker, no FastCGI (for the 5 MiB response and gitweb it
  sends only the marker, so it is no upper bound there).
- **ceiling: perl loop**: `bench/peers/perl-loop.pl`: one perl runs the
  script body (compiled once) in a loop with STDIN/STDOUT in memory, no
  FastCGI, no HTTP; its req/s is one process on one core (gitweb still
  runs `git` processes).
- Every response is checked (status 200 and a marker in the body, by wrk's
  Lua `response` hook); "bad" counts those that were not, "errors" wrk's
  socket errors and time-outs (10 s). ⚠ marks a measurement with either,
  or with no response at all.
- others' CPU: the share of the machine's CPU time (all cores, from
  /proc/stat) used during that measurement by processes that are not
  bench/run's (wrk, nginx, the contender and their children are excluded):
  other people's jobs competing for the cores.
- workers lost: worker processes (children of the master/manager) that
  were gone 1.5 s after the measurement, e.g. killed when wrk, stopping,
  aborted the requests in flight. Before each measurement the bench waits
  until the pool has all N workers again.
- PSS / Private: from `/proc/PID/smaps_rollup` of each worker process
  (children of the master/manager), read 1 s before the end of the last
  measurement of that script (after it, some peers have lost workers),
  averaged over the workers; the contender is restarted for every script.
NOTES
}

# ------------------------------------------------------------------ chart

sub chart {
    my ($png) = @_;
    my $dir = tempdir(CLEANUP => 1);
    my @panels;
    for my $n (@conns) {
        my $data = "$dir/c$n.dat";
        open my $fh, '>', $data or die "$data: $!\n";
        print $fh join(' ', 'script', map { qq{"$label{$_}"} } @contenders), "\n";
        for my $s (@scripts) {
            print $fh join(' ', $s, map {
                my $r = $na{$s}{$_} ? undef : result($s, $_, $n);
                $r && $r->{rps} > 0 ? $r->{rps} : '-';
            } @contenders), "\n";
        }
        close $fh;
        push @panels, [$n, $data];
    }
    my $cols = @contenders + 1;
    my %colour = ('spawn-perlrun' => '#d62728', 'spawn-registry' => '#ff7f0e', 'spawn-fork' => '#e377c2',
        fcgiwrap => '#7f7f7f', 'fcgi-spawn-style' => '#1f77b4', 'compile-once' => '#17becf',
        'plack-wrapcgi' => '#9467bd', 'modperl-registry' => '#2ca02c',
        'modperl-perlrun' => '#98df8a', 'nginx-return' => '#bcbd22', 'perl-loop' => '#8c564b');
    my $colours = join ' ', map { $colour{$_} // '#000000' } @contenders;
    my $height = 260 + 380 * @panels;
    open my $gp, '|-', 'gnuplot' or die "gnuplot: $!\n";
    print $gp <<GP;
set terminal pngcairo size 1400,$height font "DejaVu Sans,10" noenhanced
set output "$png"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 10
set yrange [1:*]
set grid ytics mytics
set ylabel "requests/s (log scale)"
set datafile missing "-"
set key outside right top vertical
set multiplot layout ${\ scalar @panels},1 title "fcgi-spawn and peers: requests/s per script ($workers workers each, $meta{started})" font ",12"
GP
    for my $p (@panels) {
        my ($n, $data) = @$p;
        print $gp qq{set title "$n connections (perl loop: 1 process, no I/O)"\n};
        print $gp qq{plot for [i=2:$cols] "$data" using i:xtic(1) title columnheader(i) lc rgb word("$colours", i-1)\n};
    }
    print $gp "unset multiplot\n";
    close $gp or warn "gnuplot failed\n";
}

# ------------------------------------------------------------------ helpers

# result(script, contender, conns): perl-loop has one result for all conns.
sub result {
    my ($s, $c, $n) = @_;
    return $c eq 'perl-loop' ? $run{$s}{$c}{'-'} : $run{$s}{$c}{$n};
}

sub failed { my $r = shift; $r->{bad} || $r->{err} || !$r->{req} }

sub rps { my $v = shift; $v >= 100 ? sprintf('%.0f', $v) : sprintf('%.1f', $v) }

sub ms {
    my $us = shift;
    return '—' if !defined $us || $us eq '-';
    my $ms = $us / 1000;
    return $ms < 10 ? sprintf('%.2f ms', $ms) : $ms < 100 ? sprintf('%.1f ms', $ms) : sprintf('%.0f ms', $ms);
}

sub mib { sprintf '%.1f MiB', $_[0] / 1024 }

sub read_records {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    return map { chomp; [split /\t/] } grep { /\S/ } <$fh>;
}

sub read_tsv_pairs {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    # NAME<TAB>VALUE lines; a value is one line (a line without a tab
    # would shift every pair after it).
    return map { chomp; split /\t/, $_, 2 } grep { /\t/ } <$fh>;
}
