# The shipped two-pool recipe (contrib/nginx/two-pools.conf): two daemons
# on two 127.0.0.1 ports behind one real nginx upstream. Four clients send
# 200 requests (GETs of a script that takes 200 ms, so connections queue,
# and POSTs with a body); one pool is stopped (TERM, graceful) in the
# middle. No GET fails: the stopped pool finishes what it runs and refuses
# new connections at once, nginx sends the rest to the other pool; no POST
# fails either (kept connections are told goodbye). Then, without nginx: a
# pool draining a long request refuses connections at once (they are not
# queued to be reset at its exit).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use FcgiSpawn::Test;
use FcgiSpawn::Recipe;

my $a = start_daemon(tcp => 1, workers => 2);
my $b = start_daemon(tcp => 1, workers => 2);
my $port = free_port();
my $ngx = start_nginx_site(recipe_text('nginx/two-pools.conf',
    'listen 80;' => "listen 127.0.0.1:$port;",
    '127.0.0.1:9001' => $a->listen, '127.0.0.1:9002' => $b->listen,
    '/srv/www' => scripts_dir()), $a->dir, port => $port);
my %pool_of = ((map { $_ => 'a' } worker_pids($a)), map { $_ => 'b' } worker_pids($b));

# Each client: 50 requests, every other one a POST; one line per answer:
# "n status pid" (pid of the worker that ran the GET, -1 for a POST
# answered in full, 0 when the answer is wrong).
my ($clients, $per) = (4, 50);
my @kids;
for my $c (1 .. $clients) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);
        open my $out, '>', $a->dir . "/client$c.txt" or POSIX::_exit(2);
        $out->autoflush(1);
        for my $n (1 .. $per) {
            my ($res, $pid);
            if ($n % 2 == 0) {
                my $body = "c=$c&n=$n&" . ('x' x 5000);
                $res = $http->request('POST', "http://127.0.0.1:$port/post.pl",
                    { headers => { 'content-type' => 'application/x-www-form-urlencoded' }, content => $body });
                $pid = $res->{content} =~ /^length=@{[ length $body ]}$/m ? -1 : 0;
            }
            else {
                $res = $http->get("http://127.0.0.1:$port/sleep.pl?0.2");
                ($pid) = $res->{content} =~ /^done (\d+)$/m;
            }
            print {$out} "$n $res->{status} ", ($pid || 0), "\n";
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}

sub answers { map { split /\n/, slurp($a->dir . "/client$_.txt") } 1 .. $clients }

# Pool a stops once a quarter of the requests are answered.
ok wait_for(sub { answers() >= $clients * $per / 4 }, 60), 'the load runs';
my %before = map { (split ' ')[2] => 1 } answers();
my $stopped_at = answers();
$a->stop;    # TERM; asserts exit 0
for my $k (@kids) { waitpid $k, 0; is $?, 0, "client $k finished" }
my @all = answers();
is scalar(@all), $clients * $per, "all $clients x $per requests answered";
my @failed_get = grep { /^(\d+) / && $1 % 2 && !/^\d+ 200 [1-9]/ } @all;
is scalar(@failed_get), 0, 'no GET failed (each 200 with the full answer)' or diag join "\n", @failed_get;
# No POST either: nginx may send a request on a kept connection just as the
# stopping pool would close it, and does not retry a POST elsewhere
# (fastcgi_next_upstream non_idempotent would, at the risk of running one
# twice). The pool tells each kept connection goodbye instead (t/96) and
# serves what was on its way.
my @failed_post = grep { /^(\d+) / && !($1 % 2) && !/^\d+ 200 -1$/ } @all;
is scalar(@failed_post), 0, 'no POST failed' or diag join "\n", @failed_post;
my %served = map { $pool_of{$_} ? ($pool_of{$_} => 1) : () } keys %before;
is_deeply [ sort keys %served ], [qw(a b)], 'before the stop both pools served';
# The last 5 GETs of each client came well after pool a was gone.
my @late = grep { $_ > 0 } map { (split ' ')[2] }
    map { my @l = split /\n/, slurp($a->dir . "/client$_.txt"); @l[-5 .. -1] } 1 .. $clients;
ok @late, 'GETs answered after the stop';
is scalar(grep { ($pool_of{$_} || '') eq 'b' } @late), scalar(@late), 'all by pool b';
# How often nginx met the stopped pool (after a first refusal it leaves
# the server out for fail_timeout, 10 s): for the record, not a condition.
my $refused = () = slurp($ngx->{error_log}) =~ /Connection refused/g;
note "nginx met the stopped pool $refused times";
note "pool a stopped after $stopped_at answers";

stop_server($ngx);

# Pool b drains a 1.5 s request after TERM: its address refuses new
# connections meanwhile, and the request finishes.
my $s = raw_connect($b);
print {$s} fcgi_request_bytes(1, 'sleep.pl', query => '1.5');
sleep 0.3;
kill 'TERM', $b->pid;
ok wait_for(sub { $b->log_text =~ /stopping gracefully/ }, 5), 'pool b: TERM received';
my $refused_b = !IO::Socket::INET->new(PeerAddr => $b->listen, Proto => 'tcp', Timeout => 2);
ok $refused_b, 'pool b: a new connection is refused during the drain (a web server can go elsewhere at once)';
my ($recs) = read_records($s, timeout => 10);
like collect_response($recs, 1)->{stdout}, qr/^done \d+$/m, 'pool b: the request in flight finishes';
is $b->wait_exit(10), 0, 'pool b: exits 0';
unlike $b->log_text . $a->log_text, qr/accept failed/, 'no accept error while the listening ends';
done_testing;
