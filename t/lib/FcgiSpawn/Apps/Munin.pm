package FcgiSpawn::Apps::Munin;

=head1 NAME

FcgiSpawn::Apps::Munin - Munin's CGI front end and graphs (Debian package munin) over RRD files the test fills

=head1 SYNOPSIS

    my $app = FcgiSpawn::Apps::Munin::setup($tmpdir);

=head1 DESCRIPTION

Runs the installed F</usr/lib/munin/cgi/munin-cgi-html> and
F</usr/lib/munin/cgi/munin-cgi-graph> unmodified. Both read the
configuration named by C<MUNIN_CONFIG> (set for both sides; see the top of
either script), so F</etc/munin/munin.conf> is never read: the fixture's
F<munin.conf> puts dbdir, htmldir, logdir, rundir and cgitmpdir under the
temp dir (the page templates and static files are the package's, read
from F</etc/munin>).

Why these two: they are FastCGI-ready legacy scripts, each a
C<while (new CGI::Fast) { ... }> loop that ends when FCGI accepts no more
(under CGI: after one pass), logging through C<Log::Log4perl qw(:easy)>
(C<DEBUG>, C<WARN>, C<ERROR> imported into the script's package), with
Munin's modules keeping state between passes (the configuration cache,
GraphOld's per-graph options, which C<graph_main> resets itself). On a warm
worker each request must run the loop body once with its own
C<PATH_INFO>, the request counter in C<X-Munin-Request> must read C<0/0>
as under CGI, and the Log4perl functions must be there on every request:
the issue's items 1 and 2.

Munin refuses to run as root (C<exit_if_run_by_super_user>, in the CGIs as
in munin-update): as root the test runs everything of this application as
the user C<munin> (the app's C<user>: its daemon gets C<--user munin>, its
plain-CGI side runs as munin, the fixture belongs to munin).

Set-up: a munin master's data as C<munin-update> makes it, from a node
speaking the real protocol: F<t/apps/munin/node.pl> (copied into the temp
dir), reached through C<address cmd://...>, answers C<spoolfetch> with a
day of 5-minute values (2023-05-15, UTC) for load, cpu, a network
interface and a multigraph plugin with nested graphs per disk; three nodes
in two groups. Then C<munin-cron>, what the package's cron job runs, once:
C<munin-update> writes the RRD files and the datafile, C<munin-limits> the
limits file, C<munin-html> the HTML configuration cache the CGIs read
(F<htmlconf.storable>; without it munin-cgi-html renders its second request
in a process from an emptied cache, in its own FastCGI mode as on a warm
worker: Munin's modules keep their state), C<munin-graph --cron> nothing
(C<graph_strategy cgi>).

Pages: the overview, a group, a node, a service, a nested multigraph
service, a category page, a group comparison, the problems page, an
unknown path; graphs of a fixed period (C<pinpoint=start,end>, which
C<munin-cgi-graph> accepts in the file name), with and without size
options and C<only_graph>, a nested graph, and the 404s for an unknown
service, an unknown period and a path with characters it refuses.

=head2 Masks

HTML pages: the C<start_epoch>/C<stop_epoch> of the zoom links (now minus
a day, week, month, year) and the "generated ... at E<lt>dateE<gt>"
tagline: both the current time. Graphs: C<X-Munin-Pid> (the process id),
C<X-Graph-Duration> (how long rrdtool took), and the
C<Expires>/C<Last-Modified>/C<Content-Length> headers as one block: they
come from C<keys %$headers> (hash order, random per process; the shared
harness sorts body lines only) and say what the PNG file says (its size,
its mtime: the RRD's last update). The PNG bytes are compared whole: a
pinpointed period makes the image the same on every run (graphs ending
"now" would not be, so none is requested), and C<HTTP_CACHE_CONTROL:
no-cache> or a query string makes the CGI draw every time and remove the
file after, so neither side is served the other's cached file.

=cut

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use FcgiSpawn::Apps::Fixture qw(run_cmd write_file copy_exact give_to can_reach perl_has);

my $CGI  = '/usr/lib/munin/cgi';
my $USER = 'munin';
my $NODE = abs_path(dirname(__FILE__) . '/../../../apps/munin/node.pl');

# The fixture's period: 2023-05-15 00:00 to 2023-05-16 00:00 UTC.
my ($FROM, $TO) = (1684108800, 1684195200);

sub setup {
    my ($tmp) = @_;
    my %app = (name => 'munin', roots => [$CGI], args => ['--ext', ','], user => $USER, sources => []);
    for my $file ("$CGI/munin-cgi-html", "$CGI/munin-cgi-graph", '/usr/bin/munin-cron') {
        return { %app, skip => "$file not installed (Debian package munin)" } unless -f $file;
    }
    my @need = qw(CGI::Fast FCGI Log::Log4perl RRDs Date::Manip);
    return { %app, skip => "missing Perl modules (one of @need)" } unless perl_has(@need);
    return { %app, skip => "no user $USER (Debian package munin creates it)" } unless getpwnam $USER;

    make_path(map { "$tmp/$_" } qw(db www log run cgi-tmp));
    my $node = copy_exact($NODE, "$tmp/node.pl");
    my $conf = write_file("$tmp/munin.conf", config($tmp, $node));
    give_to($USER, $tmp);
    return { %app, skip => "as root, munin's CGIs run as user $USER, who cannot reach $tmp" }
        unless can_reach($USER, "$tmp/munin.conf");
    my %env = (TZ => 'UTC', LANG => 'C', LC_ALL => 'C', HOME => $tmp);
    run_cmd(['/usr/bin/munin-cron', '--config', $conf], user => $USER, env => \%env);
    # munin-update logs a node it could not read and exits 0.
    my @rrd = glob "$tmp/db/*/*.rrd";
    die "munin-update made " . @rrd . " RRD files, not 36 (3 nodes, 12 fields each); its log:\n" . slurp("$tmp/log/munin-update.log")
        unless @rrd == 36;

    my $tagline = qr/(?<= at )\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S* \(\w+\)(?=\.<\/p>)/;
    my $zoom    = qr/start_epoch=\d+&amp;stop_epoch=\d+/;
    my $html = sub {
        my ($name, $path) = @_;
        return {
            name        => "munin-cgi-html $name",
            script      => "$CGI/munin-cgi-html",
            script_name => '/munin-cgi/munin-cgi-html',
            path_info   => $path,
            query       => '',
            params      => { HTTP_HOST => 'localhost' },
            mask        => [$zoom, $tagline],
        };
    };
    # munin-cgi-graph prints these three headers from `keys %$headers`,
    # in hash order (random per process), and the shared harness sorts
    # lines of the body only: the block is masked whole. What they say
    # comes from the PNG file (its size; its mtime, which munin-graph sets
    # to the RRD's last update), and the PNG is compared byte for byte.
    my $hash_ordered = qr/^(?:(?:Expires|Last-Modified|Content-Length): [^\n]*\n){3}/m;
    my $graph = sub {
        my ($name, $path, $query, %more) = @_;
        return {
            name        => "munin-cgi-graph $name",
            script      => "$CGI/munin-cgi-graph",
            script_name => '/munin-cgi/munin-cgi-graph',
            path_info   => $path,
            query       => defined $query ? $query : '',
            params      => { HTTP_HOST => 'localhost', HTTP_CACHE_CONTROL => 'no-cache', %{ delete $more{params} || {} } },
            mask        => [qr/^X-Munin-Pid: \K\d+/m, qr/^X-Graph-Duration: \K[\d.e-]+/m, $hash_ordered],
            %more,
        };
    };
    my $span = "pinpoint=$FROM,$TO";
    my @html = (
        $html->('overview', '/'),
        $html->('group', '/example.org/'),
        $html->('node', '/example.org/alpha.example.org/'),
        $html->('service', '/example.org/alpha.example.org/load.html'),
        $html->('nested multigraph service', '/example.org/beta.example.org/diskstats_latency/sda.html'),
        $html->('another group\'s node', '/lab.example.net/gamma.lab.example.net/'),
        $html->('category', '/system-day.html'),
        $html->('comparison', '/example.org/comparison-week.html'),
        $html->('problems', '/problems.html'),
        $html->('unknown path', '/no/such/page.html'),
    );
    my @graphs = (
        $graph->('load', "/example.org/alpha.example.org/load-$span.png"),
        $graph->('cpu, sized', "/example.org/beta.example.org/cpu-$span.png", 'size_x=400&size_y=200'),
        $graph->('traffic, graph only', "/lab.example.net/gamma.lab.example.net/if_eth0-$span.png",
            'only_graph=1', params => { HTTP_CACHE_CONTROL => 'max-age=0' }),
        $graph->('nested multigraph', "/example.org/beta.example.org/diskstats_latency/sdb-$span.png"),
        $graph->('404 unknown service', "/example.org/alpha.example.org/nosuch-$span.png"),
        $graph->('404 unknown period', '/example.org/alpha.example.org/load-decade.png'),
        $graph->('404 refused characters', '/example.org/alpha.example.org/load-day.png', 'x=%3Cscript%3E'),
    );
    return {
        %app,
        env     => { MUNIN_CONFIG => $conf },
        # Munin::Master::Logger, a module of the system's and so the
        # worker's, opens the CGI's log once per process (a file lexical,
        # $logopened) and keeps it: a worker keeps it too, one descriptor
        # for its life, where each CGI process closes it at exit.
        kept_open => qr{/log/munin-cgi-(?:html|graph)\.log\z},
        sources => [
            { name => 'munin pages',  ordered => 0, requests => \@html },
            { name => 'munin graphs', ordered => 0, requests => \@graphs },
        ],
    };
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return "($file: $!)";
    local $/;
    return <$fh>;
}

sub config {
    my ($tmp, $node) = @_;
    my $conf = <<"CONF";
# munin.conf of the fcgi-spawn suite's Munin fixture
dbdir     $tmp/db
htmldir   $tmp/www
logdir    $tmp/log
rundir    $tmp/run
cgitmpdir $tmp/cgi-tmp
tmpldir   /etc/munin/templates
staticdir /etc/munin/static
graph_strategy cgi
html_strategy  cgi
cgiurl_graph /munin-cgi/munin-cgi-graph
CONF
    for my $host ('example.org;alpha.example.org', 'example.org;beta.example.org', 'lab.example.net;gamma.lab.example.net') {
        my ($name) = $host =~ /;(.*)/;
        $conf .= "\n[$host]\n    address cmd://$node $name\n    use_node_name yes\n";
    }
    return $conf;
}

1;
