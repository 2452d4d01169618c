package FcgiSpawn::Apps::Gitweb;

=head1 NAME

FcgiSpawn::Apps::Gitweb - gitweb (Debian package gitweb) over a git repository built by the test

=head1 SYNOPSIS

    my $app = FcgiSpawn::Apps::Gitweb::setup($tmpdir);

=head1 DESCRIPTION

Runs the installed C</usr/share/gitweb/gitweb.cgi> unmodified; the test
only writes the configuration it names in C<GITWEB_CONFIG> (and an empty
C<GITWEB_CONFIG_COMMON>, so nothing under F</etc> is read).

The fixture is two bare repositories under C<$tmpdir/repos>: C<demo.git>
(commits on C<master> and a C<feature> branch merged back, an annotated and
a lightweight tag, a file with several revisions, a rename, a binary file)
and C<tools.git> (one commit, for the projects list). Author and committer
names and dates are fixed, so the commit ids are the same on every run and
both sides see the same repository.

gitweb is the application written for mod_perl's Registry: it keeps
C<our> globals (the parsed URL, C<$project>, C<$action>, the feature table)
and uses C<use CGI qw(-nosticky)>, so it is the fixture for the issue's
items 4 and 5 in C<registry>. Pages: projects list (several sort orders,
C<project_index>, C<opml>), summary, log, shortlog, commit, commitdiff (and
plain), patch, tree (root and a directory), blob, blob_plain, blobdiff,
history, tags, heads, tag, the three searches (commit, grep, pickaxe), RSS
and Atom feeds, a tgz snapshot (with C<Accept-Encoding: gzip>), a 404 (no
such project, no such file), an invalid action, and the same pages by
PATH_INFO URLs.

=head2 Masks

Only the values of the C<Expires:> and C<Date:> headers, which CGI.pm
computes from the clock for pages gitweb marks cacheable for a day
(C<-expires =E<gt> '+1d'>: everything addressed by a commit id). Commit
dates are fixed years in the past, so the relative ages gitweb prints ("4
years ago") are the same on both sides; the feeds' dates are the commits'
dates. Nothing else gitweb prints depends on the clock or the pid.

=cut

use strict;
use warnings;

use File::Path qw(make_path);
use FcgiSpawn::Apps::Fixture qw(run_cmd write_file have_program);

my $GITWEB = '/usr/share/gitweb/gitweb.cgi';

sub setup {
    my ($tmp) = @_;
    my %app = (name => 'gitweb', roots => ['/usr/share/gitweb'], sources => []);
    return { %app, skip => "$GITWEB not installed (Debian package gitweb)" } unless -f $GITWEB;
    return { %app, skip => 'git not installed' } unless have_program('git');
    make_path("$tmp/repos");
    my %ids = build_repositories($tmp);

    my $config = write_file("$tmp/gitweb_config.perl", <<"CONF");
# gitweb configuration for the fcgi-spawn differential suite
our \$projectroot = '$tmp/repos';
our \$projects_list = \$projectroot;
our \$git_temp = '$tmp/gitweb-tmp';
our \$GIT = '/usr/bin/git';
our \$site_name = 'fcgi-spawn suite';
our \$home_link_str = 'projects';
our \$default_projects_order = 'project';
our \$omit_owner = 0;
our \$maxload = undef;
\$feature{'snapshot'}{'default'} = ['tgz'];
\$feature{'search'}{'default'} = [1];
\$feature{'grep'}{'default'} = [1];
\$feature{'pickaxe'}{'default'} = [1];
\$feature{'blame'}{'default'} = [1];
\$feature{'highlight'}{'default'} = [0];
CONF
    make_path("$tmp/gitweb-tmp");
    write_file("$tmp/gitweb-common.conf", "# intentionally empty: nothing from /etc\n1;\n");

    # Pages named by a hash (commit, commitdiff, blob by id...) are sent
    # with `-expires => '+1d'`: CGI.pm writes Expires and Date from the
    # clock, to the second. Only the two header values are masked.
    my $http_dates = qr/^(?:Expires|Date): \K\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT(?=\r?\n)/m;
    my $req = sub {
        my ($name, $query, %more) = @_;
        return {
            name   => "gitweb $name",
            script => $GITWEB,
            query  => $query,
            params => { HTTP_HOST => 'localhost', %{ delete $more{params} || {} } },
            mask   => [$http_dates],
            %more,
        };
    };
    my $pi = sub {
        my ($name, $path_info, $query, %more) = @_;
        return $req->("$name (PATH_INFO)", defined $query ? $query : '',
            path_info => $path_info, %more);
    };
    my ($first, $second, $merge) = @ids{qw(first second merge)};
    my @pages = (
        $req->('projects list', ''),
        $req->('projects list by age', 'o=age'),
        $req->('projects list by description', 'a=project_list;o=descr'),
        $req->('project_index', 'a=project_index'),
        $req->('opml', 'a=opml'),
        $req->('summary', 'p=demo.git;a=summary'),
        $req->('summary (default action)', 'p=demo.git'),
        $req->('log', 'p=demo.git;a=log'),
        $req->('log of a branch', 'p=demo.git;a=log;h=refs/heads/feature'),
        $req->('shortlog', 'p=demo.git;a=shortlog'),
        $req->('shortlog page 2', 'p=demo.git;a=shortlog;pg=1'),
        $req->('commit (merge)', "p=demo.git;a=commit;h=$merge"),
        $req->('commit', "p=demo.git;a=commit;h=$second"),
        $req->('commitdiff', "p=demo.git;a=commitdiff;h=$second"),
        $req->('commitdiff_plain', "p=demo.git;a=commitdiff_plain;h=$second"),
        $req->('commitdiff of a root commit', "p=demo.git;a=commitdiff;h=$first"),
        $req->('patch', "p=demo.git;a=patch;h=$second"),
        $req->('tree', 'p=demo.git;a=tree'),
        $req->('tree of a directory', 'p=demo.git;a=tree;f=src;hb=refs/heads/master'),
        $req->('blob', 'p=demo.git;a=blob;f=src/hello.c;hb=refs/heads/master'),
        $req->('blob of an old revision', "p=demo.git;a=blob;f=src/hello.c;hb=$second"),
        $req->('blob of a binary file', 'p=demo.git;a=blob;f=images/logo.png;hb=refs/heads/master'),
        $req->('blob_plain', 'p=demo.git;a=blob_plain;f=README;hb=refs/heads/master'),
        $req->('blob_plain binary', 'p=demo.git;a=blob_plain;f=images/logo.png;hb=refs/heads/master'),
        $req->('blobdiff', "p=demo.git;a=blobdiff;f=src/hello.c;hb=refs/heads/master;hpb=$second"),
        $req->('blame', 'p=demo.git;a=blame;f=src/hello.c;hb=refs/heads/master'),
        $req->('history', 'p=demo.git;a=history;f=src/hello.c;hb=refs/heads/master'),
        $req->('tags', 'p=demo.git;a=tags'),
        $req->('heads', 'p=demo.git;a=heads'),
        $req->('annotated tag', 'p=demo.git;a=tag;h=refs/tags/v1.0'),
        $req->('search commit', 'p=demo.git;a=search;h=HEAD;st=commit;s=greeting'),
        $req->('search author', 'p=demo.git;a=search;h=HEAD;st=author;s=Alice'),
        $req->('search grep', 'p=demo.git;a=search;h=HEAD;st=grep;s=printf'),
        $req->('search pickaxe', 'p=demo.git;a=search;h=HEAD;st=pickaxe;s=world'),
        $req->('search with no match', 'p=demo.git;a=search;h=HEAD;st=commit;s=nothing-matches-this'),
        $req->('rss', 'p=demo.git;a=rss'),
        $req->('atom', 'p=demo.git;a=atom'),
        $req->('snapshot tgz', 'p=demo.git;a=snapshot;h=refs/tags/v1.0;sf=tgz',
            params => { HTTP_ACCEPT_ENCODING => 'gzip' }, gunzip => 1),
        $req->('404 unknown project', 'p=no-such.git;a=summary'),
        $req->('404 unknown file', 'p=demo.git;a=blob;f=no/such/file;hb=refs/heads/master'),
        $req->('invalid action', 'p=demo.git;a=no_such_action'),
        $req->('invalid hash', 'p=demo.git;a=commit;h=../../etc'),
        $req->('tools summary', 'p=tools.git;a=summary'),
        $pi->('projects list', '/'),
        $pi->('summary', '/demo.git'),
        $pi->('shortlog', '/demo.git/shortlog/refs/heads/feature'),
        $pi->('commit', "/demo.git/commit/$second"),
        $pi->('tree', '/demo.git/tree/refs/heads/master:/src'),
        $pi->('blob_plain', '/demo.git/blob_plain/refs/heads/master:/README'),
        $pi->('history', '/demo.git/history/refs/heads/master:/src/hello.c'),
        $pi->('atom', '/demo.git/atom'),
        $pi->('snapshot', '/demo.git/snapshot/v1.1.tar.gz', undef,
            params => { HTTP_ACCEPT_ENCODING => 'gzip' }, gunzip => 1),
        $pi->('404 unknown project', '/no-such.git/summary'),
    );
    return {
        %app,
        env => {
            GITWEB_CONFIG        => $config,
            GITWEB_CONFIG_COMMON => "$tmp/gitweb-common.conf",
        },
        preload => ['CGI', 'Encode', 'File::Find', 'Time::HiRes'],
        sources => [ { name => 'gitweb pages', ordered => 0, requests => \@pages } ],
    };
}

# Two bare repositories with fixed identities and dates; returns the ids of
# a few commits the pages name.
sub build_repositories {
    my ($tmp) = @_;
    my $work = "$tmp/work";
    make_path($work);
    my $n = 0;
    my %env = (
        HOME                => $tmp,
        GIT_CONFIG_NOSYSTEM => 1,
        GIT_CONFIG_GLOBAL   => '/dev/null',
        LANG                => 'C',
        LC_ALL              => 'C',
        TZ                  => 'UTC',
    );
    my $git = sub {
        my ($dir, @args) = @_;
        return run_cmd(['git', @args], dir => $dir, env => \%env);
    };
    my $commit = sub {
        my ($dir, $who, $msg) = @_;
        my ($name, $mail) = $who eq 'alice' ? ('Alice Liddell', 'alice@example.org')
                                            : ('Bob Builder', 'bob@example.org');
        $n++;
        # One commit a day in 2021; the zone changes so gitweb prints both forms.
        my $date = sprintf '2021-03-%02dT10:%02d:00 %s', $n, $n, $n % 2 ? '+0100' : '-0500';
        local @env{qw(GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_AUTHOR_DATE
                      GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_COMMITTER_DATE)}
            = ($name, $mail, $date, $name, $mail, $date);
        $git->($dir, 'add', '-A');
        $git->($dir, 'commit', '-q', '-m', $msg);
        my $id = $git->($dir, 'rev-parse', 'HEAD');
        chomp $id;
        return $id;
    };
    my $tag = sub {
        my ($dir, @args) = @_;
        local @env{qw(GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_COMMITTER_DATE)}
            = ('Alice Liddell', 'alice@example.org', '2021-04-01T12:00:00 +0000');
        $git->($dir, 'tag', @args);
    };

    my $d = "$work/demo";
    make_path($d);
    $git->($d, 'init', '-q', '-b', 'master');
    write_file("$d/README", "Demo project\n============\n\nA small C program.\n");
    write_file("$d/src/hello.c", "#include <stdio.h>\n\nint main(void)\n{\n\treturn 0;\n}\n");
    write_file("$d/doc/notes.txt", "notes\n");
    my %ids;
    $ids{first} = $commit->($d, 'alice', "Initial import\n\nThe skeleton of the demo program.");
    write_file("$d/src/hello.c",
        "#include <stdio.h>\n\nint main(void)\n{\n\tprintf(\"hello, world\\n\");\n\treturn 0;\n}\n");
    $ids{second} = $commit->($d, 'bob', "Print a greeting\n\nSigned-off-by: Bob Builder <bob\@example.org>");
    # Larger than a pipe holds: gitweb shows an image blob without reading
    # it and closes the pipe while `git cat-file` still writes, so the
    # page says "Reading blob failed." every time, not only when git loses
    # the race (which would make the page differ from run to run).
    write_file("$d/images/logo.png", "\x89PNG\r\n\x1a\n" . join('', map { chr } 0 .. 255) x 800);
    $commit->($d, 'alice', 'Add a binary logo');
    $tag->($d, '-a', 'v1.0', '-m', "Release 1.0\n\nFirst release.");
    $git->($d, 'checkout', '-q', '-b', 'feature');
    write_file("$d/src/greet.h", "#define GREETING \"hello, world\"\n");
    $commit->($d, 'bob', 'feature: greeting in a header');
    write_file("$d/doc/notes.txt", "notes\n\nThe greeting lives in greet.h.\n");
    $commit->($d, 'bob', 'feature: document the header');
    $git->($d, 'checkout', '-q', 'master');
    write_file("$d/src/hello.c",
        "#include <stdio.h>\n\n/* entry point */\nint main(int argc, char **argv)\n{\n\t(void)argc;\n\t(void)argv;\n\tprintf(\"hello, world\\n\");\n\treturn 0;\n}\n");
    $commit->($d, 'alice', "hello.c: take arguments & say why <in a comment>");
    run_cmd(['git', 'mv', 'doc/notes.txt', 'doc/NOTES'], dir => $d, env => \%env);
    $commit->($d, 'alice', 'Rename notes');
    {
        local @env{qw(GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_AUTHOR_DATE
                      GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_COMMITTER_DATE)}
            = ('Alice Liddell', 'alice@example.org', '2021-03-20T09:00:00 +0000',
               'Alice Liddell', 'alice@example.org', '2021-03-20T09:00:00 +0000');
        # The rename on master and the edit on feature touch the same file:
        # resolve by keeping feature's text under the new name.
        eval { $git->($d, 'merge', '-q', '--no-ff', '-m', "Merge branch 'feature'", 'feature'); 1 } or do {
            write_file("$d/doc/NOTES", "notes\n\nThe greeting lives in greet.h.\n");
            $git->($d, 'add', '-A');
            $git->($d, 'commit', '-q', '-m', "Merge branch 'feature'");
        };
        $ids{merge} = $git->($d, 'rev-parse', 'HEAD');
        chomp $ids{merge};
    }
    for my $i (1 .. 3) {
        write_file("$d/src/hello.c",
            "#include <stdio.h>\n#include \"greet.h\"\n\n/* entry point, revision $i */\nint main(void)\n{\n\tputs(GREETING);\n\treturn $i - 1;\n}\n");
        $commit->($d, $i % 2 ? 'bob' : 'alice', "hello.c: revision $i of the greeting");
    }
    $tag->($d, 'v1.1');
    $git->($work, 'clone', '-q', '--bare', $d, "$tmp/repos/demo.git");
    write_file("$tmp/repos/demo.git/description", "Demo C program with branches & tags\n");
    $git->("$tmp/repos/demo.git", 'config', 'gitweb.owner', 'Alice Liddell');
    # `clone --bare` copies master's remote branches as local heads; the
    # feature branch is there too.
    $git->("$tmp/repos/demo.git", 'update-server-info');

    my $t = "$work/tools";
    make_path($t);
    $git->($t, 'init', '-q', '-b', 'master');
    write_file("$t/build.sh", "#!/bin/sh\nmake all\n", 0755);
    $commit->($t, 'bob', 'Build helper');
    $git->($work, 'clone', '-q', '--bare', $t, "$tmp/repos/tools.git");
    write_file("$tmp/repos/tools.git/description", "Small tools\n");
    $git->("$tmp/repos/tools.git", 'config', 'gitweb.owner', 'Bob Builder');
    return %ids;
}

1;
