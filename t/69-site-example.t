# The README's complete t/site.t example ("Checking your scripts"), taken
# out of README.md between its markers and run as a user would run it:
# from another directory, with -I pointing at this repository's perl/ and
# the fcgi-spawn binary found in PATH, against examples/ in place of
# /srv/www/cgi-bin. So the README cannot drift from what works.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use FcgiSpawn::Test;

my $top = abs_path("$FindBin::Bin/..");
my $readme = slurp("$top/README.md");
my ($block) = $readme =~ m{^<!-- t/site\.t: begin -->\n(.*?)^<!-- t/site\.t: end -->$}ms
    or BAIL_OUT('README.md has no t/site.t example between <!-- t/site.t: begin --> and <!-- t/site.t: end -->');
ok !grep({ !/^(?:    |$)/ } split /\n/, $block), 'the example is one indented code block';
(my $code = $block) =~ s/^    //mg;

my $examples = "$top/examples";
my $n = $code =~ s{'/srv/www/cgi-bin'}{'$examples'}g;
is $n, 1, 'the example names its root once, as /srv/www/cgi-bin';

my $site_dir = tempdir('fcgi-spawn-site-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$site_dir/t" or die "mkdir: $!";

# Runs $code as t/site.t of a site in $site_dir; returns (TAP, exit code).
sub run_site_t {
    my ($text) = @_;
    spew("$site_dir/t/site.t", $text);
    my $out = "$site_dir/site.out";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        chdir $site_dir or POSIX::_exit(126);
        delete $ENV{FCGI_SPAWN_BIN};
        $ENV{PATH} = dirname(bin_path()) . ":$ENV{PATH}";
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec $^X, '-I', "$top/perl", 't/site.t' or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return (slurp($out), $? >> 8);
}

my ($tap, $rc) = run_site_t($code);
is $rc, 0, 't/site.t passes' or diag $tap;
my ($plan) = $tap =~ /^1\.\.(\d+)$/m;
my @ok = $tap =~ /^ok \d+ /mg;
ok $plan && $plan >= 8, 'it plans its tests (' . ($plan // 'no plan') . ')' or diag $tap;
is scalar(@ok), $plan, 'every one of them ok';
unlike $tap, qr/^not ok/m, 'none failed';

# Without the mask for index.cgi's process id, the same example fails and
# shows the diff: the assertions it makes are real.
(my $unmasked = $code) =~ s{(script => "\$root/index\.cgi"), mask => \[qr/process \\d\+/\]}{$1};
my $edited = $unmasked ne $code;
ok $edited, 'the index.cgi line can be taken without its mask';
SKIP: {
    skip 'example changed: no index.cgi line with a mask', 3 unless $edited;
    ($tap, $rc) = run_site_t($unmasked);
    isnt $rc, 0, 'unmasked: t/site.t fails';
    like $tap, qr/^not ok 1 - \Q$examples\E\/index\.cgi: same bytes as plain CGI$/m, 'on index.cgi';
    like $tap, qr/^# -<p><small>Served by process \d+/m, 'with a diff of the process id';
}

done_testing;
