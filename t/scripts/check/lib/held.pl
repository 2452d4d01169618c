# Loaded at run time by t/scripts/check/destroy-at-exit.pl: a file of the
# site declaring a package of its own, whose variable keeps an object
# (of the script's class Noisy) until the process ends.
package Held;
use strict;
use warnings;

our $object = Noisy->new('in a package of a file it loaded');

1;
