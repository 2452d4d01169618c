#!/usr/bin/perl
# Loads a module from its own library directory (outside the roots and the
# daemon's @INC) and switches its settings for one host, as BackupPC's
# admin pages do per host: the next script that uses the module must get
# it as loaded (check/own-lib.pl).
use strict;
use warnings;
use Cwd ();
use FindBin;
use lib Cwd::abs_path("$FindBin::Bin/../../ownlib");
use OwnConf;

OwnConf::load_host('alpha');
print "Content-Type: text/plain\n\nlang=$OwnConf::Conf{Lang} header=$OwnConf::Conf{Header} loads=$OwnConf::Loads\n";
