# Nothing leaks between requests in one worker: globals, packages, %ENV,
# cwd, $0, umask, $/ $, $\ $|, select, %SIG, open handles, @INC, layers;
# FindBin and __FILE__ follow the script.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $d = start_daemon(workers => 1, preload => ['CGI']);
my ($pid0) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;

sub state_of {
    my ($out) = fcgi_request($d, 'iso-check.pl');
    my $r = parse_cgi($out);
    is $r->{status}, 200, 'iso-check.pl ran' or diag $out;
    return { $r->{body} =~ /^(\w+)=(.*)$/mg };
}

my $base = state_of();
is $base->{$_}, 'undef', "fresh worker: $_ undef" for qw(our_global main_global leaky_var leaky_sub env_leak left_open ofs ors);
is $base->{cwd_is_script_dir}, 1, 'fresh worker: cwd is the script dir';
is $base->{irs}, 'newline', 'fresh worker: $/ is newline';
is $base->{selected}, 'STDOUT', 'fresh worker: STDOUT selected';
is $base->{dollar0}, 'script', 'fresh worker: $0 is the script';

for my $round (1 .. 3) {
    my ($out) = fcgi_request($d, 'iso-set.pl');
    is parse_cgi($out)->{body}, "set \x{e2}\x{98}\x{ba}\n", "round $round: iso-set.pl page (UTF-8 layer worked)";
    my $now = state_of();
    is_deeply $now, $base, "round $round: state after iso-set.pl equals the fresh state"
        or diag join "\n", map { "$_: before=$base->{$_} after=" . ($now->{$_} // 'missing') }
            grep { ($base->{$_} // '') ne ($now->{$_} // '') } sort keys %$base;
}

for my $round (1 .. 3) {
    my ($out) = fcgi_request($d, 'counter.pl');
    is parse_cgi($out)->{body}, "hits=1\nremember=1\nmade=1\n", "round $round: script globals, file lexicals and its package start fresh";
}

my ($out) = fcgi_request($d, 'utf8.pl');
is parse_cgi($out)->{body}, "smile=\x{e2}\x{98}\x{ba}\n", 'binmode :encoding(UTF-8) works';
($out) = fcgi_request($d, 'large.pl');
is length(parse_cgi($out)->{body}), 5 * 1024 * 1024, 'binary output after a UTF-8 layer is not re-encoded';

for my $round (1 .. 2) {
    ($out) = fcgi_request($d, 'sub/findbin.pl');
    like $out, qr{^bin=\Q${\ scripts_dir()}\E/sub$}m, "round $round: FindBin::Bin of sub/findbin.pl";
    like $out, qr{^local=sub-local-module$}m, "round $round: use lib \$FindBin::Bin/lib works";
    ($out) = fcgi_request($d, 'findbin.pl');
    like $out, qr{^bin=\Q${\ scripts_dir()}\E$}m, "round $round: FindBin::Bin of findbin.pl";
    like $out, qr{^file=\Q${\ script_path('findbin.pl')}\E$}m, "round $round: __FILE__ of findbin.pl";
}
my $after = state_of();
is $after->{inc_count}, $base->{inc_count}, '@INC did not grow after use lib in scripts';

my ($pid1) = fcgi_request($d, 'pid.pl') =~ /(\d+)/;
is $pid1, $pid0, 'all of it ran in one worker';
unlike $d->log_text, qr/Subroutine \S+ redefined/, 'no "Subroutine redefined" warnings';
unlike $d->log_text, qr/leaked warn handler/, 'leaked __WARN__ handler never fired';
$d->stop;
done_testing;
