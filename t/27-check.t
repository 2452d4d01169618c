# `fcgi-spawn check SCRIPT...` (issue 11, SPEC §6): compiles scripts in the
# interpreter the daemon would start from the same flags (preloads, preload
# scripts, roots, extensions), reports what does not compile with file and
# line; exit 0 when all compile, 1 when one does not or would not run, 2
# on a bad configuration.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Cwd qw(realpath);
use Test::More;
use FcgiSpawn::Test;

my $dir = realpath(tempdir('fcgi-spawn-check-XXXXXX', TMPDIR => 1, CLEANUP => 1));
mkdir "$dir/www";
spew("$dir/www/good.pl", "use strict;\nuse warnings;\nuse CGI ();\nprint CGI::header(), \"ok\\n\";\n");
spew("$dir/www/syntax.pl", "use strict;\nmy \$x = 1;\nmy \$y = ;\nprint \"x\\n\";\n");
spew("$dir/www/strict.pl", "use strict;\nprint \$undeclared;\n");
spew("$dir/www/begin.pl", "BEGIN { die \"no database configured\\n\" }\nprint \"x\\n\";\n");
# Compiles only where the preload script defined Site::config (as in the
# daemon with the same --preload-script).
spew("$dir/www/needs-preload.pl", "use strict;\nBEGIN { Site::config() }\nprint \"Content-Type: text/plain\\n\\nok\\n\";\n");
spew("$dir/startup.pl", "package Site;\nsub config { 1 }\n1;\n");
spew("$dir/www/page.txt", "text\n");
spew("$dir/elsewhere.pl", "print \"x\\n\";\n");
spew("$dir/bad.toml", "workers = \"many\"\n");

sub check_err {
    my (@args) = @_;
    my $err = "$dir/check.err";
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', "$dir/check.out" or die;
        open STDERR, '>', $err or die;
        exec FcgiSpawn::Test::bin_path(), 'check', '--root', "$dir/www", @args or exit 127;
    }
    waitpid $pid, 0;
    return ($? >> 8, slurp("$dir/check.out"), slurp($err));
}

my ($code, $out, $err) = check_err("$dir/www/good.pl");
is $code, 0, 'a good script: exit 0';
is $out, "$dir/www/good.pl: OK\n", '... one OK line on stdout';

($code, $out, $err) = check_err("$dir/www/good.pl", "$dir/www/syntax.pl", "$dir/www/strict.pl", "$dir/www/begin.pl");
is $code, 1, 'one bad script among good ones: exit 1';
like $out, qr/^\Q$dir\E\/www\/good\.pl: OK$/m, 'the good one is OK';
like $err, qr/^\Q$dir\E\/www\/syntax\.pl: FAILED\nsyntax error at \Q$dir\E\/www\/syntax\.pl line 3, near "= ;"/m,
    'syntax error: named, with file and line';
like $err, qr/^\Q$dir\E\/www\/strict\.pl: FAILED\nGlobal symbol "\$undeclared" requires explicit package name .* at \Q$dir\E\/www\/strict\.pl line 2\./m,
    'strict error: file and line';
like $err, qr/^\Q$dir\E\/www\/begin\.pl: FAILED\nno database configured\nBEGIN failed--compilation aborted at \Q$dir\E\/www\/begin\.pl line 1\./m,
    'die in BEGIN: its message, file and line';
unlike "$out$err", qr/^x$/m, 'nothing ran';

($code, $out, $err) = check_err("$dir/www/needs-preload.pl");
is $code, 1, 'without the preload script the daemon has, it does not compile';
like $err, qr/Undefined subroutine &Site::config called at \Q$dir\E\/www\/needs-preload\.pl line 2/, '... and says so';
($code, $out, $err) = check_err('--preload-script', "$dir/startup.pl", "$dir/www/needs-preload.pl");
is $code, 0, 'with the same --preload-script as the daemon: OK';

my $cfg = "$dir/site.toml";
spew($cfg, "preload_script = [\"$dir/startup.pl\"]\nisolation = \"registry\"\n");
($code, $out) = check_err('--config', $cfg, "$dir/www/needs-preload.pl");
is $code, 0, 'the same from the config file';

($code, $out, $err) = check_err("$dir/elsewhere.pl", "$dir/www/page.txt", "$dir/www/missing.pl");
is $code, 1, 'scripts the daemon would not run: exit 1';
like $err, qr/elsewhere\.pl: the daemon would not run it \(403\): .* outside the allowed roots/, 'outside the roots: 403';
like $err, qr/page\.txt: the daemon would not run it \(403\): .* allowed extension/, 'wrong extension: 403';
like $err, qr/missing\.pl: no such file/, 'missing: said so';

($code, $out, $err) = check_err('--config', "$dir/bad.toml", "$dir/www/good.pl");
is $code, 2, 'a bad configuration: exit 2';
like $err, qr/workers/, '... naming the key';

($code, $out, $err) = check_err('--preload', 'No::Such::Module', "$dir/www/good.pl");
is $code, 2, 'a preload that fails: exit 2';
like $err, qr/--preload No::Such::Module: Can't locate No\/Such\/Module\.pm/, '... naming it';
done_testing;
