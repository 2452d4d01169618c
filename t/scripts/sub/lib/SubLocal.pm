package SubLocal;
use strict;
use warnings;

sub whoami { 'sub-local-module' }

1;
