#!/usr/bin/perl
# The common "use lib $FindBin::Bin/lib" idiom, from a sub-directory.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use SubLocal;

print "Content-Type: text/plain\n\n";
print "bin=$FindBin::Bin\n";
print 'file=', __FILE__, "\n";
print 'local=', SubLocal::whoami(), "\n";
