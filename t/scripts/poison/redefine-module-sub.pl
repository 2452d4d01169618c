#!/usr/bin/perl
# Redefines a sub of a core module (File::Basename::basename).
use strict;
use warnings;
use File::Basename ();

{
    no warnings 'redefine';
    *File::Basename::basename = sub { return 'poisoned-basename' };
}
print "Content-Type: text/plain\n\n", File::Basename::basename('/a/b/c.txt'), "\n";
