#!/usr/bin/perl
# A module required at run time and called by its full name: compiling the
# script makes the module's top-level package (Compress::) before the module
# loads into it.
use strict;
use warnings;

require Compress::Zlib;
print "Content-Type: text/plain\n\ncrc32=", Compress::Zlib::crc32('fcgi-spawn'), "\n";
