# Missing script: 404. Outside --root, bad extension, symlink or ".." out of
# the root, no exec bit (as under CGI): 403, and the file never runs.
# --ignore-exec-bit runs a script without it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use FcgiSpawn::Test;

my $top = tempdir(CLEANUP => 1);
mkdir "$top/www";
mkdir "$top/www/sub";
my $ok_script = "#!/usr/bin/perl\nprint qq{Content-Type: text/plain\\n\\nallowed\\n};\n";
my $bad_script = "#!/usr/bin/perl\nprint STDERR qq{forbidden-script-ran\\n}; print qq{Content-Type: text/plain\\n\\nmust not run\\n};\n";
spew("$top/www/ok.pl", $ok_script, 0755);
spew("$top/www/ok.cgi", $ok_script, 0755);
spew("$top/www/bad.sh", $bad_script, 0755);
spew("$top/www/bad.txt", $bad_script, 0755);
spew("$top/outside.pl", $bad_script, 0755);
spew("$top/www/off.pl", $bad_script, 0644);    # switched off, CGI's way
symlink "$top/outside.pl", "$top/www/link-out.pl" or die "symlink: $!";
symlink "$top/www/ok.pl", "$top/www/link-in.pl" or die "symlink: $!";

my $d = start_daemon(workers => 1, root => ["$top/www"], ext => '.pl,.cgi');

my ($out) = fcgi_request($d, "$top/www/ok.pl");
is parse_cgi($out)->{body}, "allowed\n", '.pl under the root runs';
($out) = fcgi_request($d, "$top/www/ok.cgi");
is parse_cgi($out)->{body}, "allowed\n", '.cgi under the root runs';
($out) = fcgi_request($d, "$top/www/link-in.pl");
is parse_cgi($out)->{body}, "allowed\n", 'symlink to a file inside the root runs';

($out) = fcgi_request($d, "$top/www/missing.pl");
is parse_cgi($out)->{status}, 404, 'missing script: 404';
($out) = fcgi_request($d, "$top/www/sub/missing.pl");
is parse_cgi($out)->{status}, 404, 'missing script in a sub dir: 404';

for my $case (
    [ "$top/outside.pl",              'outside the root' ],
    [ "$top/www/bad.sh",              'extension .sh' ],
    [ "$top/www/bad.txt",             'extension .txt' ],
    [ "$top/www/link-out.pl",         'symlink pointing out of the root' ],
    [ "$top/www/sub/../../outside.pl", '.. out of the root' ],
    [ script_path('hello.pl'),        'another dir entirely' ],
    [ "$top/www/off.pl",              'no exec bit (chmod -x)' ],
) {
    my ($path, $what) = @$case;
    ($out) = fcgi_request($d, $path);
    is parse_cgi($out)->{status}, 403, "$what: 403";
    unlike $out, qr/must not run/, "$what: script did not run";
}
sleep 0.3;
unlike $d->log_text, qr/forbidden-script-ran/, 'no forbidden script ran';
like $d->log_text, qr{\Q$top/www/off.pl\E is not executable: under CGI it would not run either \(chmod \+x it, or set ignore_exec_bit},
    'the log says why a script without its exec bit is refused, and what to do';
$d->stop;
my $check = `@{[ bin_path() ]} check --root $top/www $top/www/off.pl 2>&1`;
isnt $?, 0, 'fcgi-spawn check fails on it';
like $check, qr{off\.pl: the daemon would not run it \(403\): .* is not executable}, '... and says why';

# A directory the scripts' user may not enter: 403, not "not found", and
# the log and check say whose permission is missing.
SKIP: {
    skip 'needs root to run scripts as www-data', 4 if $> != 0;
    chmod 0755, $top, "$top/www";
    mkdir "$top/www/closed";
    spew("$top/www/closed/page.pl", $ok_script, 0755);
    chmod 0700, "$top/www/closed";
    my $as_www = start_daemon(workers => 1, root => ["$top/www"], args => ['--user', 'www-data']);
    ($out) = fcgi_request($as_www, "$top/www/closed/page.pl");
    is parse_cgi($out)->{status}, 403, 'a script in a directory www-data cannot enter: 403';
    ok wait_for(sub { $as_www->log_text =~ m{permission denied for www-data: cannot reach \Q$top/www/closed/page.pl\E} }, 5),
        '... the log says permission denied for www-data';
    $as_www->stop;
    my $said = `@{[ bin_path() ]} check --root $top/www --user www-data $top/www/closed/page.pl 2>&1`;
    isnt $?, 0, 'check fails on it';
    like $said, qr/would not run it \(403\): permission denied for www-data/, '... saying why';
}

my $lenient = start_daemon(workers => 1, root => ["$top/www"], args => ['--ignore-exec-bit']);
($out) = fcgi_request($lenient, "$top/www/off.pl");
is parse_cgi($out)->{body}, "must not run\n", '--ignore-exec-bit: a script without the exec bit runs';
$lenient->stop;
done_testing;
