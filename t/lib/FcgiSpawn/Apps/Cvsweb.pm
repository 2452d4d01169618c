package FcgiSpawn::Apps::Cvsweb;

=head1 NAME

FcgiSpawn::Apps::Cvsweb - FreeBSD-CVSweb (Debian package cvsweb) over a CVS repository built by the test

=head1 SYNOPSIS

    my $app = FcgiSpawn::Apps::Cvsweb::setup($tmpdir);

=head1 DESCRIPTION

cvsweb reads F<cvsweb.conf> from its own directory before
F</etc/cvsweb/cvsweb.conf>, so the installed F</usr/lib/cgi-bin/cvsweb> is
copied byte for byte to C<$tmpdir/cgi/cvsweb.cgi> with the suite's
F<cvsweb.conf> beside it (the copy gets the C<.cgi> name sites give it; the
daemon's default extensions allow it).

Set-up: C<cvs init>, C<cvs import> of a small module, commits on the trunk,
a tag, a branch with its own commits, a removed file (in the Attic), a
binary file. CVS stamps revisions with the time of the commit; the set-up
then rewrites the C<date> of every delta in the C<,v> files to fixed dates
in 2021 (keeping their order), so the ages cvsweb prints ("4 years") do not
move between the two sides of a comparison.

Pages: the root and a directory listing (several sort orders, the Attic
shown), a file's log (by date, by revision, only one tag), a revision
(marked up and plain), diffs in the unified, context, side-by-side and
human-readable formats, annotate, the tar.gz of a directory, a 404 and a
403 (the CVSROOT/passwd rule), and the listing, log, diff and annotate
again for a client that accepts gzip: cvsweb then compresses its output
through a handle tied over STDOUT (Compress::Zlib; C<| gzip -1 -c> when
that is missing) that is closed at the end of the script or by global
destruction: the issue's item 3.

=head2 Masks

The hidden inputs of the diff form come from C<each %input>: in hash
order, random per process, so each run of C<< <input type="hidden" >>
lines is compared sorted (every other line stays in place).

In the tarball only (compared after decompression): the modification time
of each directory entry of the tar stream and that header's checksum
(C<[0-7]{11}\0[0-7]{6}\0 5>). C<cvs export> creates the directories when
the request runs; the files keep their revision dates and are compared
whole.

=cut

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use File::Basename qw(dirname);
use File::Find qw(find);
use File::Path qw(make_path remove_tree);
use FcgiSpawn::Apps::Fixture qw(run_cmd write_file copy_exact copy_tree have_program);

my $CVSWEB = '/usr/lib/cgi-bin/cvsweb';

sub setup {
    my ($tmp) = @_;
    my %app = (name => 'cvsweb', roots => ["$tmp/cgi"], sources => []);
    return { %app, skip => "$CVSWEB not installed (Debian package cvsweb)" } unless -f $CVSWEB;
    for my $tool (qw(cvs rlog rcsdiff)) {
        return { %app, skip => "$tool not installed (Debian packages cvs, rcs)" } unless have_program($tool);
    }
    my $root = copy_tree(built_repository(), "$tmp/cvsroot");
    my $script = copy_exact($CVSWEB, "$tmp/cgi/cvsweb.cgi");
    write_file("$tmp/cgi/cvsweb.conf", config($root));

    my $req = sub {
        my ($name, $path_info, $query, %more) = @_;
        return {
            name      => "cvsweb $name",
            script    => $script,
            path_info => $path_info,
            query     => defined $query ? $query : '',
            params    => { HTTP_HOST => 'localhost', %{ delete $more{params} || {} } },
            # The diff form repeats the request's parameters as hidden
            # inputs with `while (each %input)`: their order is perl's hash
            # order, random per process. Only runs of those lines are sorted.
            sort_lines       => 'cvsweb prints the hidden inputs of its diff form in hash order',
            sort_lines_match => qr/^<input type="hidden" /,
            %more,
        };
    };
    my $gz = sub {
        my ($name, $path_info, $query) = @_;
        return $req->("$name (gzip)", $path_info, $query,
            params => { HTTP_ACCEPT_ENCODING => 'gzip, deflate' }, gunzip => 1);
    };
    my @pages = (
        $req->('root', '/'),
        $req->('directory', '/demo/'),
        $req->('directory by date, attic shown', '/demo/', 'sortby=date;hideattic=0'),
        $req->('directory by log, only a tag', '/demo/src/', 'sortby=log;only_with_tag=RELEASE_1_0'),
        $req->('subdirectory', '/demo/src/'),
        $req->('file log', '/demo/src/main.c'),
        $req->('file log by revision', '/demo/src/main.c', 'logsort=rev'),
        $req->('file log on a branch', '/demo/src/main.c', 'only_with_tag=STABLE_1'),
        $req->('log of a removed file', '/demo/Attic/old.txt'),
        $req->('revision, marked up', '/demo/src/main.c', 'rev=1.2;content-type=text%2Fx-cvsweb-markup'),
        $req->('revision, plain', '/demo/src/main.c', 'rev=1.3;content-type=text%2Fplain'),
        $req->('revision of a branch', '/demo/src/main.c', 'rev=1.3.2.1;content-type=text%2Fx-cvsweb-markup'),
        $req->('binary revision', '/demo/doc/logo.png', 'rev=1.1;content-type=application%2Foctet-stream'),
        $req->('diff unified', '/demo/src/main.c.diff', 'r1=1.1;r2=1.4;f=u'),
        $req->('diff context', '/demo/src/main.c.diff', 'r1=1.2;r2=1.3;f=c'),
        $req->('diff side by side', '/demo/src/main.c.diff', 'r1=1.2;r2=1.4;f=s'),
        $req->('diff human readable', '/demo/src/main.c.diff', 'r1=1.1;r2=1.4;f=h'),
        $req->('diff against a branch', '/demo/src/main.c.diff', 'r1=1.3;r2=1.3.2.2;f=u'),
        $req->('annotate', '/demo/src/main.c', 'annotate=1.4'),
        $req->('tarball', '/demo/src/src.tar.gz', 'tarball=1',
            gunzip => 1, mask => [qr/[0-7]{11}\x00[0-7]{6}\x00 5/]),
        $req->('404 no such file', '/demo/no/such/file.c'),
        $req->('403 forbidden file', '/CVSROOT/passwd'),
        $req->('bad revision', '/demo/src/main.c', 'rev=9.9;content-type=text%2Fplain'),
        $gz->('directory', '/demo/'),
        $gz->('file log', '/demo/src/main.c'),
        $gz->('diff unified', '/demo/src/main.c.diff', 'r1=1.1;r2=1.4;f=u'),
        $gz->('diff human readable', '/demo/src/main.c.diff', 'r1=1.1;r2=1.4;f=h'),
        $gz->('annotate', '/demo/src/main.c', 'annotate=1.4'),
        $gz->('revision, marked up', '/demo/README', 'rev=1.2;content-type=text%2Fx-cvsweb-markup'),
    );
    return {
        %app,
        preload => ['File::Temp', 'IPC::Run', 'Time::Local'],
        sources => [ { name => 'cvsweb pages', ordered => 0, requests => \@pages } ],
    };
}

sub config {
    my ($root) = @_;
    return <<"CONF";
# cvsweb configuration for the fcgi-spawn differential suite
\@command_path = qw(/bin /usr/bin /usr/local/bin);
for (qw(cvs rlog rcsdiff gzip gtar zip cvsgraph enscript)) {
    \$CMD{\$_} = search_path(\$_);
}
\$CMD{tar}   = delete(\$CMD{gtar}) if \$CMD{gtar};
\$CMD{tar} ||= search_path('tar');
# No cvsgraph and no enscript: the pages do not depend on what else is installed.
delete \@CMD{qw(cvsgraph enscript)};
\@CVSrepositories = ('suite' => ['Suite Repository', '$root']);
%DEFAULTVALUE = (
    'sortby' => 'file', 'ignorecase' => '0', 'hideattic' => '1', 'logsort' => 'date',
    'f' => 'u', 'hidecvsroot' => '0', 'hidenonreadable' => '1', 'ln' => '0',
);
\$defaulttitle = 'Suite CVS Repository';
\$address = 'fcgi-spawn suite';
\$long_intro = '<p>The repository of the differential suite.</p>';
\$short_instruction = '<p>Click on a directory to enter it.</p>';
%ICONS = (
    back    => ['[BACK]',  '/icons/back.gif',      20, 22],
    dir     => ['[DIR]',   '/icons/dir.gif',       20, 22],
    file    => ['[TXT]',   '/icons/text.gif',      20, 22],
    binfile => ['[BIN]',   '/icons/binary.gif',    20, 22],
    graph   => ['[GRAPH]', '/icons/minigraph.png', 16, 16],
);
\$cssurl = '/cvsweb/cvsweb.css';
\$shortLogLen = 80;
\$show_author = 1;
\$tablepadding = 2;
\@ForbiddenFiles = (qr|^CVSROOT/+passwd\$|o, qr|/\\.cvspass\$|o);
\$use_descriptions = 0;
\$hr_breakable = 1;
\$showfunc = 1;
\$hr_ignwhite = 0;
\$hr_ignkeysubst = 1;
\$inputTextSize = 12;
%MTYPES = ('html' => 'text/html', 'gif' => 'image/gif', 'png' => 'image/png', 'jpg' => 'image/jpeg');
\$mime_types = '/etc/mime.types';
\$charset = '';
\$output_filter = '';
\$allow_annotate = 1;
\$allow_markup = 1;
\$allow_dir_extra = 1;
\$allow_source_extra = 1;
\$allow_compress = 1;
\$allow_tar = 1;
\$use_java_script = 1;
\$edit_option_form = 1;
\$show_log_in_markup = 1;
\$use_moddate = 1;
\$allow_cvsgraph = 0;
\@tar_options = qw();
\@gzip_options = qw(-n);
\@zip_options = qw(-q);
\@cvs_options = qw(-f);
\$ENV{CVSREADONLYFS} = 1 unless exists(\$ENV{CVSREADONLYFS});
\@annotate_options = \@cvs_options;
\@rcsdiff_options = qw(-q);
\$tabstop = 8;
\$mancgi = '';
1;
CONF
}

# The repository, built once per test run: CVS sleeps past the second of
# every commit (nine seconds in all), and what it builds does not depend on
# where (the set-up rewrites the dates), so the test files that set cvsweb
# up share one copy under target/, keyed by this file and the cvs version.
sub built_repository {
    my $top = abs_path(dirname(__FILE__) . '/../../../..');
    my $key = md5_hex(join "\0", do { local (@ARGV, $/) = __FILE__; <> }, run_cmd([ 'cvs', '--version' ]));
    my $cache = "$top/target/test-fixtures/cvsroot-$key";
    return $cache if -d $cache;
    my $build = "$cache.building.$$";
    build_repository($build, "$build/cvsroot");
    # Another test file may have finished first: its copy is as good.
    rename "$build/cvsroot", $cache or -d $cache or die "rename to $cache: $!";
    remove_tree($build);
    return $cache;
}

sub build_repository {
    my ($tmp, $root) = @_;
    my %env = (HOME => $tmp, LANG => 'C', LC_ALL => 'C', TZ => 'UTC', CVSROOT => $root,
               CVS_RSH => 'false', USER => 'alice', LOGNAME => 'alice', CVSEDITOR => 'false');
    my $cvs = sub {
        my ($dir, @args) = @_;
        return run_cmd(['cvs', '-Q', '-f', '-d', $root, @args], dir => $dir, env => \%env);
    };
    make_path($root);
    $cvs->($tmp, 'init');
    my $imp = "$tmp/import";
    write_file("$imp/README", "Demo module\n\nImported for the suite.\n");
    write_file("$imp/src/main.c", join '', map { "$_\n" } '#include <stdio.h>', '', 'int main(void)', '{',
        "\treturn 0;", '}');
    write_file("$imp/src/util.h", "#ifndef UTIL_H\n#define UTIL_H\nint twice(int);\n#endif\n");
    write_file("$imp/old.txt", "to be removed\n");
    write_file("$imp/doc/logo.png", "\x89PNG\r\n\x1a\n" . join('', map { chr } 0 .. 255));
    $cvs->($imp, 'import', '-m', "Initial import of the demo module", 'demo', 'VENDOR', 'START');
    my $wc = "$tmp/wc";
    $cvs->($tmp, 'checkout', '-d', 'wc', 'demo');
    $cvs->($wc, 'admin', '-kb', 'doc/logo.png');
    my $commit = sub {
        my ($msg, @files) = @_;
        $cvs->($wc, 'commit', '-m', $msg, @files);
    };
    write_file("$wc/src/main.c", join '', map { "$_\n" } '#include <stdio.h>', '#include "util.h"', '',
        'int main(void)', '{', "\tprintf(\"%d\\n\", twice(21));", "\treturn 0;", '}');
    $commit->("main.c: print the answer\n\nUses twice() from util.h.", 'src/main.c');
    write_file("$wc/README", "Demo module\n\nImported for the suite.\nBuild with: cc src/*.c\n");
    $commit->('README: how to build', 'README');
    write_file("$wc/src/main.c", join '', map { "$_\n" } '#include <stdio.h>', '#include "util.h"', '',
        '/* the answer, computed */', 'int main(void)', '{', "\tint a = twice(21);", "\tprintf(\"%d\\n\", a);",
        "\treturn a == 42 ? 0 : 1;", '}');
    $commit->('main.c: check the answer & <say so>', 'src/main.c');
    $cvs->($wc, 'tag', 'RELEASE_1_0');
    $cvs->($wc, 'tag', '-b', 'STABLE_1');
    $cvs->($wc, 'update', '-r', 'STABLE_1');
    for my $i (1 .. 2) {
        write_file("$wc/src/main.c", join '', map { "$_\n" } '#include <stdio.h>', '#include "util.h"', '',
            "/* stable fix $i */", 'int main(void)', '{', "\treturn twice($i) - 2 * $i;", '}');
        $commit->("STABLE_1: fix $i", 'src/main.c');
    }
    $cvs->($wc, 'update', '-A');
    unlink "$wc/old.txt";
    $cvs->($wc, 'remove', 'old.txt');
    $commit->('old.txt is gone', 'old.txt');
    write_file("$wc/src/main.c", join '', map { "$_\n" } '#include <stdio.h>', '#include "util.h"', '',
        '/* the answer, computed twice */', 'int main(void)', '{', "\tint a = twice(21);",
        "\tint b = twice(a) / 2;", "\tprintf(\"%d %d\\n\", a, b);", "\treturn a == b ? 0 : 1;", '}');
    $commit->('main.c: compute it twice', 'src/main.c');
    fix_dates($root);
}

# Every `date YYYY.MM.DD.hh.mm.ss;` of every ,v file becomes a fixed date in
# 2021, one hour apart, in the order of the original stamps; revisions
# stamped in the same second (commits are fast) are ordered by revision
# number, so no two deltas of a file share a date.
sub fix_dates {
    my ($root) = @_;
    my @files;
    find({ wanted => sub { push @files, $File::Find::name if /,v\z/ }, no_chdir => 1 }, $root);
    @files = sort @files;
    my (%text, @deltas);
    my $date_re = qr/^(\d+(?:\.\d+)+)\ndate\t(\d{4}\.\d\d\.\d\d\.\d\d\.\d\d\.\d\d);/m;
    for my $f (@files) {
        open my $fh, '<:raw', $f or die "read $f: $!";
        $text{$f} = do { local $/; <$fh> };
        while ($text{$f} =~ /$date_re/g) {
            push @deltas, [$2, $f, $1];
        }
    }
    my $by_rev = sub {
        my @a = split /\./, $_[0];
        my @b = split /\./, $_[1];
        while (@a && @b) {
            my $c = shift(@a) <=> shift(@b);
            return $c if $c;
        }
        return @a <=> @b;
    };
    my %to;
    my $i = 0;
    for my $d (sort { $a->[0] cmp $b->[0] || $by_rev->($a->[2], $b->[2]) || $a->[1] cmp $b->[1] } @deltas) {
        $to{"$d->[1] $d->[2]"} = sprintf '2021.06.%02d.%02d.17.00', 1 + int($i / 24), $i % 24;
        $i++;
    }
    for my $f (@files) {
        (my $text = $text{$f}) =~ s/$date_re/$1\ndate\t$to{"$f $1"};/g;
        my $mode = (stat $f)[2] & 07777;
        chmod 0644, $f;
        write_file($f, $text);
        chmod $mode, $f;
    }
}

1;
