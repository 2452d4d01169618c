#!/usr/bin/perl
# Leaves @INC read-only: the worker cannot put @INC back after this request,
# so it must not serve another one.
use strict;
use warnings;
print "Content-Type: text/plain\n\npage complete\n";
Internals::SvREADONLY(@INC, 1);
