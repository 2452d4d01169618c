# The layout of src/ (STYLE.md): modules depend one way (no import circle,
# at any depth of the module tree), and no file holds more than 600 lines
# of code (blank lines, comments and its unit tests left out).
use strict;
use warnings;
use FindBin;
use File::Find qw(find);
use Test::More;

my $src = "$FindBin::Bin/../src";
my %source;    # module path (a::b, '' for the crate root) => its code
find({ no_chdir => 1, wanted => sub {
    return unless /\.rs\z/;
    (my $rel = substr $_, length($src) + 1) =~ s/\.rs\z//;
    my @path = split m{/}, $rel;
    pop @path if $path[-1] eq 'mod';
    @path = () if "@path" eq 'lib' || "@path" eq 'main';
    open my $fh, '<', $_ or die "$_: $!";
    my $code = do { local $/; <$fh> };
    $code =~ s/#\[cfg\(test\)\]\s*mod tests\s*\{.*//s;    # unit tests come last
    $source{ join '::', @path } = $code;
} }, $src);
ok keys %source > 10, 'the modules of src/ read';

# The module a path names: its longest prefix that is a module.
sub module_of {
    my @parts = split /::/, $_[0];
    while (@parts) {
        my $m = join '::', @parts;
        return $m if exists $source{$m};
        pop @parts;
    }
    return undef;
}

# Edges between modules cut to their first $depth names.
sub edges {
    my ($depth) = @_;
    my $cut = sub { join '::', grep { defined } (split /::/, $_[0])[ 0 .. $depth - 1 ] };
    my %edges;
    for my $m (keys %source) {
        my $code = $source{$m};
        my @parent = split /::/, $m;
        pop @parent;
        my @refs = $code =~ /crate::([a-z_][a-z0-9_:]*)/g;
        push @refs, map { join '::', @parent, $_ } $code =~ /super::([a-z_][a-z0-9_:]*)/g;
        for my $group ($code =~ /use crate::\{([^}]*)\}/g) {
            push @refs, map { (split /::\{/)[0] } grep { length } split /[,\s]+/, $group;
        }
        for my $ref (@refs) {
            $ref =~ s/::\z//;
            my $to = module_of($ref);
            next unless defined $to && length $to;
            my ($a, $b) = ($cut->($m), $cut->($to));
            $edges{$a}{$b} = 1 if $a ne $b;
        }
    }
    return \%edges;
}

# A circle in the graph, as a list of modules, or none.
sub circle {
    my ($edges) = @_;
    my (%state, @stack);
    my $visit;
    $visit = sub {
        my ($v) = @_;
        $state{$v} = 'open';
        push @stack, $v;
        for my $w (sort keys %{ $edges->{$v} || {} }) {
            if (($state{$w} // '') eq 'open') {
                my ($at) = grep { $stack[$_] eq $w } 0 .. $#stack;
                return [ @stack[ $at .. $#stack ], $w ];
            }
            next if $state{$w};
            my $found = $visit->($w);
            return $found if $found;
        }
        pop @stack;
        $state{$v} = 'done';
        return undef;
    };
    for my $v (sort keys %$edges) {
        next if $state{$v};
        my $found = $visit->($v);
        return $found if $found;
    }
    return undef;
}

for my $depth (1 .. 4) {
    my $found = circle(edges($depth));
    ok !$found, "no import circle between modules at depth $depth"
        or diag join ' -> ', @$found;
}
ok circle({ a => { b => 1 }, b => { c => 1 }, c => { a => 1 } }), 'the check finds a circle it is shown';

my @long;
for my $m (sort keys %source) {
    my $lines = grep { !m{^\s*(?://.*)?$} } split /\n/, $source{$m};
    push @long, "$m: $lines lines of code" if $lines > 600;
}
is_deeply \@long, [], 'no file in src/ over 600 lines of code';
done_testing;
