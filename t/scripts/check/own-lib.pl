#!/usr/bin/perl
# A module of the script's own library directory, as this process sees it:
# loaded once, with its settings as the module sets them.
use strict;
use warnings;
use Cwd ();
use FindBin;
use lib Cwd::abs_path("$FindBin::Bin/../../ownlib");
use OwnConf;

print "Content-Type: text/plain\n\nlang=$OwnConf::Conf{Lang} header=$OwnConf::Conf{Header} loads=$OwnConf::Loads\n";
