#!/usr/bin/perl
# Says which configuration its worker was forked with: the value of the
# `env` setting RELOAD_V (t/74-reload.t changes it between reloads).
use strict;
use warnings;
print "Content-Type: text/plain\r\n\r\n";
print "V=", ($ENV{RELOAD_V} // 'unset'), " pid=$$ end\n";
