package FCGI::Spawn;

use strict;
use warnings;

our $VERSION = '0.1.0';

# True inside fcgi-spawn: a script can tell it runs persistently.
our $PERSISTENT = 1;

sub persistent { return 1 }

my %XINC;    # key => { stamps => {file => mtime}, value => [...] }

sub _stamps {
    my @files = @_;
    return { map { my @st = stat $_; ($_ => (@st ? $st[9] : -1)) } @files };
}

sub _same_stamps {
    my ($old, $new) = @_;
    return 0 if keys %$old != keys %$new;
    for my $f (keys %$new) {
        return 0 if !exists $old->{$f} || $old->{$f} != $new->{$f};
    }
    return 1;
}

# xinc($file, $code) or xinc([$file, @dependencies], $code): the result of
# $code->($file), cached in this worker until $file or a dependency changes
# (mtime). Returns it as it was returned (list or scalar context).
sub xinc {
    my ($files, $code) = @_;
    my @files = ref $files eq 'ARRAY' ? @$files : ($files);
    die "FCGI::Spawn::xinc: a file name and a code ref are needed\n"
        unless @files && ref $code eq 'CODE';
    my $key = join "\0", @files;
    my $stamps = _stamps(@files);
    my $hit = $XINC{$key};
    if (!$hit || !_same_stamps($hit->{stamps}, $stamps)) {
        my @value = $code->($files[0]);
        $hit = $XINC{$key} = { stamps => $stamps, value => \@value };
    }
    return wantarray ? @{ $hit->{value} } : $hit->{value}[-1];
}

1;

__END__

=head1 NAME

FCGI::Spawn - what a script running under fcgi-spawn can ask of it

=head1 SYNOPSIS

    if ($FCGI::Spawn::PERSISTENT) { ... }   # or FCGI::Spawn->persistent
    my $config = FCGI::Spawn::xinc('/etc/app.conf', \&parse_config);
    my $tmpl   = FCGI::Spawn::xinc(['/srv/t/page.tt', '/srv/t/inc.tt'], \&load);

=head1 DESCRIPTION

Built into the fcgi-spawn daemon (no file to install). C<xinc> caches the
result of an expensive load per worker and recomputes it when the file, or
one of the listed dependencies, changes mtime — FCGI::Spawn's C<xinc>.

=cut
