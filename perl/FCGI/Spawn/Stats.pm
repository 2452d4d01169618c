package FCGI::Spawn::Stats;

# The `stats` setting (FCGI::Spawn's `stats` and `stats_policy`): before a
# request, each module in %INC whose file changed on disk is loaded again,
# so an edited library shows without a restart.
#
# "Changed" is decided by a policy: the stat(2) fields compared (mtime by
# default; FCGI::Spawn's names). The master records every loaded module's
# fields after the preloads, so workers forked from it, at the start or
# later, see an edit made since; a worker records a module it loads later
# the first time it sees it, and its own reloads. One log line per reload.

use strict;
use warnings;

our $VERSION = '0.1.0';

# stat(2) field name => index in perl's stat list (perldoc -f stat).
my %FIELD = (
    dev => 0, ino => 1, mode => 2, nlink => 3, uid => 4, gid => 5, rdev => 6,
    size => 7, atime => 8, mtime => 9, ctime => 10, blksize => 11, blocks => 12,
);

our $ON = 0;
# The indexes compared, in order.
my @POLICY;
# %INC key => the recorded fields, joined.
my %SEEN;

# start(FIELD...): turns reloading on with this policy (names, or `all`:
# every field but atime) and records what is loaded now.
sub start {
    my @fields = @_ ? @_ : ('mtime');
    @POLICY = map {
        my $name = $_;
        $name eq 'all'
            ? (grep { $_ != $FIELD{atime} } sort { $a <=> $b } values %FIELD)
            : (defined $FIELD{$name} ? $FIELD{$name} : die "stats_policy: unknown stat field '$name'\n");
    } @fields;
    $ON = 1;
    %SEEN = ();
    signature_changed($_) for keys %INC;
    return 1;
}

# Whether the file behind %INC key $key changed since it was recorded (a
# file seen for the first time is recorded, not changed).
sub signature_changed {
    my ($key) = @_;
    my $path = $INC{$key};
    return 0 if !defined $path || ref $path || $path !~ m{^/} && $path !~ m{^\.};
    my @stat = stat $path or return 0;
    my $now = join ':', map { defined $_ ? $_ : '' } @stat[@POLICY];
    my $was = $SEEN{$key};
    $SEEN{$key} = $now;
    return defined $was && $was ne $now;
}

# Before a request: reloads the changed modules; returns how many.
sub reload_changed {
    return 0 unless $ON;
    my $count = 0;
    for my $key (sort keys %INC) {
        next unless signature_changed($key);
        my $path = $INC{$key};
        delete $INC{$key};
        my $ok = eval {
            # The module's subs are defined again: that is the point.
            local $SIG{__WARN__} = sub {
                warn @_ unless $_[0] =~ /^(?:Subroutine|Constant subroutine) \S+ redefined/;
            };
            require $key;
            1;
        };
        if ($ok) {
            warn "fcgi-spawn: stats: reloaded $key ($path changed)\n";
            $count++;
        } else {
            # The old code stays; the next change is tried again.
            $INC{$key} = $path;
            warn "fcgi-spawn: stats: cannot reload $key ($path changed): $@";
        }
    }
    return $count;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Stats - reload changed modules before a request (`stats`)

=head1 DESCRIPTION

Built into the fcgi-spawn daemon; turned on by the C<stats> setting, with
the stat fields of C<stats_policy> (default C<mtime>). C<start> runs in the
master after the preloads, C<reload_changed> in a worker before each
request. Costs one stat(2) per loaded module per request.

=cut
