#!/usr/bin/perl
# cvsweb's way: a module loaded, if it can be, from a `use constant` (the
# package named while compiling, loaded at BEGIN time).
use strict;
use warnings;

use constant HAS_ZLIB => eval { require Compress::Zlib; };
print "Content-Type: text/plain\n\nzlib=", (HAS_ZLIB ? 'yes' : 'no'), "\n";
