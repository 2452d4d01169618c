#!/usr/bin/perl
# exit before any output: the request ends, the worker lives on.
use strict;
use warnings;

exit 0;
