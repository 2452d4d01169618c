# How a script's source reaches perl's compile.
#
# perlrun compiles the script on every request, and a worker keeps what
# the file's text gives between requests only while the file is unchanged
# (FCGI::Spawn::Compile::file_scope_source). No edit is ever missed: one
# made right after the last read (the same second, the same size), one
# made in place with the old mtime put back, a file replaced by another of
# the same size and mtime. A kept script with __DATA__ reads it from the
# start every time, and the worker holds none of the scripts' files open.
#
# In every mode the @INC hook that hands the text to `do` is gone before
# the script's first BEGIN block, and the script's `use lib` comes first.
# Each request is compared with the same request run as a plain CGI process.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use FcgiSpawn::Test qw(open_files);
use Test::FCGI::Spawn;

$ENV{FCGI_SPAWN_BIN} //= FcgiSpawn::Test::bin_path();
my $tmp = tempdir('fcgi-spawn-t56-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $script = "$tmp/edited.pl";
my $data_script = "$tmp/data.pl";

# The same length for every version: only the text changes.
sub version {
    my ($v) = @_;
    return "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\n\";\nprint \"version $v\\n\";\n";
}

# Rewrites the file in place (same inode), its mtime put back if asked.
sub edit_in_place {
    my ($v, $mtime) = @_;
    open my $fh, '+<', $script or die "open $script: $!";
    print {$fh} version($v);
    close $fh or die "close $script: $!";
    utime $mtime, $mtime, $script if defined $mtime;
    return;
}

Test::FCGI::Spawn::spew($script, version(1));
chmod 0755, $script;
Test::FCGI::Spawn::spew($data_script, <<'EOF');
#!/usr/bin/perl
print "Content-Type: text/plain\n\n";
print "first: ", scalar <DATA>;
print "rest: ", join '', <DATA>;
__DATA__
line one
line two
EOF
chmod 0755, $data_script;

my $site = Test::FCGI::Spawn->start(roots => [$tmp], isolation => 'perlrun', workers => 1);
my ($worker) = $site->worker_pids;
my $req = { script => $script, name => 'edited.pl' };

sub body_is {
    my ($want, $what) = @_;
    my $r = $site->request($req);
    is $r->{body}, "version $want\n", $what;
    return;
}

body_is(1, 'the first version');
edit_in_place(2);
body_is(2, 'an edit in the same second as the last read, the same size: seen');
$site->same_as_cgi($req, 'as under plain CGI');

# Old enough to be kept between requests.
sleep 3;
body_is(2, 'the file two seconds old: the same version');
body_is(2, 'and again (kept)');
my $mtime = (stat $script)[9];
edit_in_place(3, $mtime);
body_is(3, 'an edit in place with its old mtime put back: seen (ctime)');

sleep 3;
body_is(3, 'kept again');
my $replacement = "$tmp/replacement.tmp";
Test::FCGI::Spawn::spew($replacement, version(4));
chmod 0755, $replacement;
utime $mtime, $mtime, $replacement;
rename $replacement, $script or die "rename: $!";
body_is(4, 'the file replaced by one of the same size and mtime: seen');
$site->same_as_cgi($req, 'as under plain CGI, after the edits');

# __DATA__ of a kept script: from the start, every time.
my $data_req = { script => $data_script, name => 'data.pl' };
$site->same_as_cgi($data_req, "$data_req->{name}, read and kept") for 1 .. 3;
my $r = $site->request($data_req);
is $r->{body}, "first: line one\nrest: line two\n", 'DATA read from its start on a kept script';

my @open = grep { index($_, $tmp) == 0 } sort keys %{ open_files($worker) };
is "@open", '', 'the worker holds none of the scripts open between requests';
my ($still) = $site->worker_pids;
is $still, $worker, 'one worker served them all';
$site->stop;

my $inc_req = { script => FcgiSpawn::Test::scripts_dir() . '/check/inc-at-compile.pl', name => 'inc-at-compile.pl' };
for my $mode (qw(perlrun registry fork)) {
    my $pool = Test::FCGI::Spawn->start(roots => [ FcgiSpawn::Test::scripts_dir() ], isolation => $mode);
    $pool->same_as_cgi($inc_req, "$mode: $inc_req->{name} as under plain CGI") for 1 .. 2;
    my $r = $pool->request($inc_req);
    like $r->{body}, qr/^hooks at begin: 0\n/m, "$mode: no hook of ours in \@INC when the script compiles";
    $pool->stop;
}
done_testing;
