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
C<...::Cvsweb>, C<...::Dwww>, C<...::Inhouse>) build their fixtures (a git
repository, an access log, a CVS repository, a database) with the real
tools, as a site would have them. This module holds what they share: running
a set-up command with a fixed environment and failing loudly with its
output, writing files, copying a packaged file byte for byte.

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

our @EXPORT_OK = qw(apps run_cmd write_file copy_exact have_program perl_has);

sub apps { return qw(Gitweb Awstats Cvsweb Dwww Inhouse) }

# run_cmd([argv...], dir => $cwd, env => {NAME => VALUE}, stdin => $text)
# Runs a set-up command; dies with its output when it fails. Returns stdout.
sub run_cmd {
    my ($argv, %o) = @_;
    my $out_file = File::Temp->new;
    my $in_file  = File::Temp->new;
    print {$in_file} defined $o{stdin} ? $o{stdin} : '';
    close $in_file;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        chdir $o{dir} or POSIX::_exit(125) if defined $o{dir};
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} || {} };
        open STDIN, '<', $in_file->filename or POSIX::_exit(126);
        open STDOUT, '>', $out_file->filename or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
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

use File::Temp ();
use POSIX ();

1;
