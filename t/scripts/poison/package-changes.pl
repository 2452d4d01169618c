#!/usr/bin/perl
# Its own package's state as it starts, then one of the ways a run can
# change a package (?do=NAME, several with commas): every run must start
# as a new process does. In registry mode the package is put back after
# each run, by its image when the stash kept its shape (packages.c), so
# what changed after quiet runs is the case to see: scalars, array
# elements, an array's order or length, hash keys, subs, globs, slots,
# handles opened on package globs, symbols made and deleted, a constant
# made a glob, a declared package's globals and its sub emptied.
use strict;
use warnings;
no warnings qw(once redefine);
use constant PI => 3;

our ($counter, $other, @list, %conf);
BEGIN {
    $counter = 1;
    $other   = 'other';
    @list    = qw(c a b);
    %conf    = (a => 1, b => 2);
}
sub greet { 'hello' }
sub later { 'later' }

package Inner;
our ($val, @items);
BEGIN { $val = 'inner'; @items = (1, 2) }
sub hi { 'inner hi' }

package main;

my %CHANGE = (
    scalar       => sub { $counter = 5 },
    scalar_undef => sub { undef $other },
    array_push   => sub { push @list, 'x' },
    array_pop    => sub { pop @list },
    array_elem   => sub { $list[0] = 'z' },
    array_sort   => sub { @list = sort @list },
    array_clear  => sub { @list = () },
    hash_add     => sub { $conf{new} = 1 },
    hash_swap    => sub { delete $conf{a}; $conf{zz} = 1 },
    hash_elem    => sub { $conf{a} = 'changed' },
    hash_clear   => sub { %conf = () },
    sub_redefine => sub { *greet = sub { 'redefined' } },
    sub_eval     => sub { eval 'no warnings "redefine"; sub greet { "evaled" } 1' or die $@ },
    sub_undef    => sub { undef &later },
    glob_alias   => sub { *counter = *other },
    glob_undef   => sub { undef *conf },
    slot_array   => sub { *list = [qw(swapped in)] },
    slot_scalar  => sub { *counter = \'read-only' },
    slot_hash    => sub { *conf = { swapped => 1 } },
    open_file    => sub { open LOG, '<', __FILE__ or die "open: $!" ; my $line = <LOG> },
    open_dir     => sub { opendir DIRH, '.' or die "opendir: $!" },
    symbol_new   => sub { no strict 'refs'; ${ __PACKAGE__ . '::made_here' } = 'made' },
    symbol_gone  => sub { no strict 'refs'; delete ${ __PACKAGE__ . '::' }{other} },
    constant_glob => sub { no strict 'refs'; *{ __PACKAGE__ . '::PI' } = sub { 4 } },
    inner_scalar => sub { $Inner::val = 'changed' },
    inner_array  => sub { push @Inner::items, 3 },
    inner_sub    => sub { *Inner::made = sub { 'made' } },
    inner_sub_undef => sub { undef &Inner::hi },
);

# The package's state: what each name holds, read without making a slot.
sub state_line {
    my $stash = do { no strict 'refs'; \%{ __PACKAGE__ . '::' } };
    my $inner = \%Inner::;
    my @parts;
    my $glob = sub { my ($table, $name) = @_; exists $table->{$name} && ref \$table->{$name} eq 'GLOB' ? \$table->{$name} : undef };
    for my $name (qw(counter other)) {
        my $g = $glob->($stash, $name);
        push @parts, "$name=" . (!$g ? 'absent' : defined ${ *{$g}{SCALAR} } ? ${ *{$g}{SCALAR} } : 'undef');
    }
    my $g = $glob->($stash, 'list');
    push @parts, 'list=' . ($g && *{$g}{ARRAY} ? join '|', @{ *{$g}{ARRAY} } : 'none');
    $g = $glob->($stash, 'conf');
    push @parts, 'conf=' . ($g && *{$g}{HASH} ? join '|', map { "$_:${ *{$g}{HASH} }{$_}" } sort keys %{ *{$g}{HASH} } : 'none');
    for my $name (qw(greet later)) {
        # A sub nothing else names is a reference in the table, not a glob.
        $g = $glob->($stash, $name);
        my $code = $g ? *{$g}{CODE} : ref $stash->{$name} eq 'CODE' ? $stash->{$name} : undef;
        push @parts, "$name=" . (!$code ? 'none' : defined &$code ? $code->() : 'undefined');
    }
    push @parts, 'PI=' . (!exists $stash->{PI} ? 'absent' : ref \$stash->{PI} eq 'GLOB' ? 'glob' : 'constant');
    $g = $glob->($stash, 'LOG');
    push @parts, 'LOG=' . ($g && *{$g}{IO} && defined fileno *{$g}{IO} ? 'open' : 'closed');
    $g = $glob->($stash, 'DIRH');
    push @parts, 'DIRH=' . ($g && *{$g}{IO} && do { no warnings 'io'; defined telldir *{$g}{IO} } ? 'open' : 'closed');
    push @parts, 'made_here=' . (exists $stash->{made_here} ? 'present' : 'absent');
    $g = $glob->($inner, 'val');
    push @parts, 'Inner::val=' . ($g ? ${ *{$g}{SCALAR} } // 'undef' : 'absent');
    push @parts, 'Inner::items=' . join '|', @Inner::items;
    push @parts, 'Inner::made=' . (exists $inner->{made} ? 'present' : 'absent');
    push @parts, 'Inner::hi=' . (defined &Inner::hi ? Inner::hi() : 'undefined');
    return join(' ', @parts) . "\n";
}

print "Content-Type: text/plain\n\n", state_line();
my ($do) = ($ENV{QUERY_STRING} // '') =~ /(?:^|&)do=([\w,]+)/;
for my $change (split /,/, $do // '') {
    ($CHANGE{$change} or die "no change $change\n")->();
    print "did $change\n";
}
