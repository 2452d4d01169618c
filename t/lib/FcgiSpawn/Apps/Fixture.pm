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
