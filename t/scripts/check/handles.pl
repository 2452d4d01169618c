#!/usr/bin/perl
# The standard handles: descriptors, PerlIO layers (the daemon's own
# fcgi_spawn_* output layer left out: it is how fcgi-spawn captures STDOUT,
# not something a script pushed), ties, autoflush ($|), file types; and
# what was last read.
use strict;
use warnings;

my $r = '';
for my $name (qw(STDIN STDOUT STDERR)) {
    no strict 'refs';
    my $fh = \*{"main::$name"};
    my $fd = fileno $fh;
    my @layers = grep { !/^fcgi_spawn/ } PerlIO::get_layers($fh);
    my $tied = tied *$fh;
    my $old = select $fh;
    my $autoflush = $|;
    select $old;
    $r .= "$name fileno=" . (defined $fd ? $fd : 'undef')
        . ' layers=' . join(',', @layers)
        . ' tied=' . ($tied ? ref $tied : 'no')
        . " autoflush=$autoflush"
        . ' type=' . (!defined $fd ? 'closed' : -p $fh ? 'pipe' : -c $fh ? 'chardev' : -f $fh ? 'file' : -S $fh ? 'socket' : 'other')
        . "\n";
}
# Nothing read yet: no $., and no ", <FH> line N." after a die message.
my $suffix = do { eval { die 'probe' }; $@ };
$suffix =~ s/^probe at \S+ line \d+//;
$r .= '$. ' . (defined $. ? $. : 'undef') . ', last read ' . (defined ${^LAST_FH} ? *{ ${^LAST_FH} }{NAME} : 'none')
    . ", die suffix:$suffix";
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
