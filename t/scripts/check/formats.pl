#!/usr/bin/perl
# The format state of STDOUT and STDERR ($~ $^ $= $- $%), and what write does
# when the script defined no format (a new process: "Undefined format").
use strict;
use warnings;

my $r = '';
for my $fh (\*STDOUT, \*STDERR) {
    my $old = select $fh;
    my @v = ($~, $^, $=, $-, $%);
    select $old;
    $r .= "$$fh: format=$v[0] top=$v[1] page_length=$v[2] lines_left=$v[3] page=$v[4]\n";
}
my $wrote = eval { write; 1 };
$r .= 'write: ' . ($wrote ? "wrote\n" : $@);
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
