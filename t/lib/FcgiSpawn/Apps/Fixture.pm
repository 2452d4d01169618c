package FcgiSpawn::Apps::Fixture;

=head1 NAME

FcgiSpawn::Apps::Fixture - shared helpers for the application fixtures of the differential suite

=head1 SYNOPSIS

    use FcgiSpawn::Apps::Fixture qw(run_cmd write_file copy_exact);
    for my $name (FcgiSpawn::Apps::Fixture::apps()) {
        my $module = "FcgiSpawn::Apps::$name";
        eval "require $module" or die $@;
        my $app = $module->can('setup')->("$tmp/$name");
        ...
    }

=head1 DESCRIPTION

The application modules (C<FcgiSpawn::Apps::Gitweb>, C<...::Awstats>,
C<...::Cvsweb>, C<...::Dwww>, C<...::Inhouse>, C<...::Munin>,
C<...::Backuppc>) build their fixtures (a git repository, an access log, a
CVS repository, a database, RRD files, a backup server's state) with the
real tools, as a site would have them. This module holds what they share:
running a set-up command with a fixed environment (as another user if need
be) and failing loudly with its output, writing files, copying a packaged
file byte for byte, or a packaged tree with its installation paths moved
under the temp dir.

C<apps()> is the list of application modules, in the order the suite runs
them; this module itself has no C<setup> and is not an application.

=head1 WHAT C<setup> RETURNS

The structure of F</work/notes/suite-contract.md> ("App fixtures"), with
these additions, which t/49-apps.t implements and the shared harness
(Test::FCGI::Spawn, FcgiSpawn::Sequence) has to honour for these fixtures
to compare correctly:

=over

=item C<args> (app)

More C<fcgi-spawn run> flags for this application's daemon, e.g.
C<['--ext', ',']> (dwww is installed without an extension; an empty list
allows any).

=item C<reset> (app)

A code ref that puts the application's data back as set-up left it, for
both sides. Call it before each run (each mode, each sequence), so both
sides start equal. Applications without it have no per-side data, so
their plain-CGI answer to a request can be computed once and reused.

=item C<jar> (request)

A cookie jar name. Requests with the same jar share one jar per side:
C<Set-Cookie> headers of the response update it (an empty value, C<Max-Age=0>
or an expiry in 1970-2009 removes the cookie), and the request is sent with
C<HTTP_COOKIE> built from it (C<name=value; ...>, names sorted), unless its
C<params> set C<HTTP_COOKIE>. The two sides' jars are never mixed.

=item C<map_ids> (request)

Regexps. Each match (or its first capture group) is replaced with
C<< <id N> >>, where N numbers the distinct matched values in their order
of first appearance on that side, across the whole run (per side, per
mode; not reset between requests). For ids random by design (session ids):
the two sides compare equal when their ids play the same role, and an id
seen on one side where the other has none, or has a different one, stays a
difference. Applied before C<mask>.

=item C<sort_lines_match> (request, with C<sort_lines>)

When present, C<sort_lines> sorts only each maximal run of consecutive
lines matching this regexp (the rows of one table), leaving every other
line in place; without it, all lines are sorted.

=item C<gunzip> (request)

As in the contract; a body starting with the gzip magic is decompressed
(all members, strict) before comparing; a broken stream becomes
C<< <gzip stream broken: ...> >> (so a truncated response is a difference,
not an error). Applies to C<Content-Encoding: gzip> pages and to gzip
downloads (tar.gz snapshots). Masks apply after decompression.

=item C<script_name> (request, optional)

C<SCRIPT_NAME> when it is not C</> followed by the script's file name.

=item C<user> (app, optional)

The user the application's scripts run as when the test runs as root (an
application that refuses root, as munin's CGIs do, and whose fixture
belongs to that user). t/49-apps.t then starts its daemon with
C<--user> and runs its plain-CGI side as that user; the test's temp dir is
made traversable (0711) so the user reaches its fixture. Not root: ignored,
both sides run as the test's user. FcgiSpawn::Sequence runs every app in one
daemon, which has one user: as root it leaves such an app out, with a note.

=back

Every request also gets the full parameter set the harness builds
(C<GATEWAY_INTERFACE>, C<SERVER_*>, C<REMOTE_ADDR>, C<REQUEST_METHOD>,
C<SCRIPT_FILENAME>, C<SCRIPT_NAME>, C<REQUEST_URI> (with C<PATH_INFO> and
the query), C<QUERY_STRING>, C<CONTENT_LENGTH>, C<CONTENT_TYPE> for a body,
C<PATH_INFO>), identical on both sides, then C<params>, then the side's
C<side_params>.

=cut

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path);

our @EXPORT_OK = qw(apps run_cmd write_file copy_exact copy_tree have_program perl_has
    drop_privileges give_to can_reach);

sub apps { return qw(Gitweb Awstats Cvsweb Dwww Inhouse Munin Backuppc) }

# run_cmd([argv...], dir => $cwd, env => {NAME => VALUE}, stdin => $text,
#         user => $name)
# Runs a set-up command (as `user` when the test runs as root); dies with
# its output when it fails. Returns stdout.
sub run_cmd {
    my ($argv, %o) = @_;
    my $out_file = File::Temp->new;
    my $in_file  = File::Temp->new;
    print {$in_file} defined $o{stdin} ? $o{stdin} : '';
    close $in_file;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', $in_file->filename or POSIX::_exit(126);
        open STDOUT, '>', $out_file->filename or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        eval { drop_privileges($o{user}); 1 } or do { print STDERR $@; POSIX::_exit(124) };
        chdir $o{dir} or POSIX::_exit(125) if defined $o{dir};
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} || {} };
        exec { $argv->[0] } @$argv or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $status = $?;
    open my $fh, '<:raw', $out_file->filename or croak "read output of @$argv: $!";
    my $out = do { local $/; <$fh> };
    $out = '' unless defined $out;
    croak "set-up command failed (status $status): @$argv\n"
        . (defined $o{dir} ? "in $o{dir}\n" : '') . $out
        if $status != 0;
    return $out;
}

# write_file($path, $content, $mode): creates parent directories; raw bytes.
sub write_file {
    my ($path, $content, $mode) = @_;
    make_path(dirname($path));
    open my $fh, '>:raw', $path or croak "write $path: $!";
    print {$fh} $content;
    close $fh or croak "close $path: $!";
    chmod $mode, $path if defined $mode;
    return $path;
}

# copy_exact($from, $to): the packaged file, byte for byte, with its mode
# (used only for applications that read their configuration from their own
# directory, so the copy is the installed program, not a patched one).
sub copy_exact {
    my ($from, $to) = @_;
    make_path(dirname($to));
    copy($from, $to) or croak "copy $from -> $to: $!";
    chmod((stat $from)[2] & 07777, $to) or croak "chmod $to: $!";
    return $to;
}

# copy_tree($from, $to, {'/installed/path' => '/new/path', ...}): every
# file under $from copied to the same place under $to with its mode, each
# listed path in it replaced by its new one (longest first). For packages
# whose installation writes absolute paths into the code (BackupPC's
# configure.pl: its lib, conf and data directories), this is the package
# installed under another prefix, not a patched one: dies unless every
# listed path was found somewhere, so a package that moved one is noticed.
sub copy_tree {
    my ($from, $to, $paths) = @_;
    my @old = sort { length $b <=> length $a || $a cmp $b } keys %{ $paths || {} };
    my $re = @old ? join('|', map { quotemeta } @old) : undef;
    my %seen;
    my @files;
    File::Find::find({ no_chdir => 1, wanted => sub { push @files, $File::Find::name if -f } }, $from);
    for my $file (sort @files) {
        my $rel = substr $file, length $from;
        open my $in, '<:raw', $file or croak "read $file: $!";
        my $text = do { local $/; <$in> };
        $text = '' unless defined $text;
        $text =~ s{($re)}{$seen{$1}++; $paths->{$1}}ge if defined $re;
        write_file("$to$rel", $text, (stat $file)[2] & 07777);
    }
    my @missing = grep { !$seen{$_} } @old;
    croak "copy_tree $from: no file mentions @missing" if @missing;
    return $to;
}

# drop_privileges($user): in a child process, become $user (uid and its
# primary group, no supplementary groups) when running as root; a no-op when
# not root or $user is undef. Dies when the switch did not happen.
sub drop_privileges {
    my ($user) = @_;
    return if !defined $user || $> != 0;
    my (undef, undef, $uid, $gid) = getpwnam $user or croak "no user '$user' on this machine";
    $( = $gid;
    $) = "$gid $gid";
    $< = $> = $uid;
    croak "could not switch to user $user (uid $uid): $!" if $< != $uid || $> != $uid;
    return;
}

# can_reach($user, $path): true when $user can read $path (not root: true).
# Run in a child that switches to the user, so every directory above counts.
sub can_reach {
    my ($user, $path) = @_;
    return 1 if $> != 0;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $ok = eval { drop_privileges($user); -r $path };
        POSIX::_exit($ok ? 0 : 1);
    }
    waitpid $pid, 0;
    return $? == 0;
}

# give_to($user, @paths): when running as root, every file and directory
# under @paths becomes $user's (and its primary group's); a no-op otherwise.
sub give_to {
    my ($user, @paths) = @_;
    return if !defined $user || $> != 0;
    my (undef, undef, $uid, $gid) = getpwnam $user or croak "no user '$user' on this machine";
    File::Find::find({ no_chdir => 1, wanted => sub {
        return if -l $File::Find::name;
        chown $uid, $gid, $File::Find::name or croak "chown $File::Find::name: $!";
    } }, @paths);
    return;
}

sub have_program {
    my ($name) = @_;
    for my $dir (split /:/, $ENV{PATH} || '/usr/bin:/bin') {
        return "$dir/$name" if -x "$dir/$name";
    }
    return;
}

# perl_has('DBD::SQLite', ...): true when every module loads in a plain perl.
sub perl_has {
    my (@modules) = @_;
    for my $m (@modules) {
        my $pid = fork;
        croak "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open STDERR, '>', '/dev/null';
            exec { $^X } $^X, "-M$m", '-e', '1' or POSIX::_exit(127);
        }
        waitpid $pid, 0;
        return 0 if $? != 0;
    }
    return 1;
}

use File::Find ();
use File::Temp ();
use POSIX ();

1;
