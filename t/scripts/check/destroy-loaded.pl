#!/usr/bin/perl
# A file of the site loaded at run time keeps an object in its package
# (no sub of this script keeps a lexical: in registry it runs in the
# worker). Under CGI the object goes at the process's exit, its DESTROY
# printing after the page; so must it at the end of every request.
use strict;
use warnings;
use FindBin;

package Noisy {
    sub new { my ($class, $name) = @_; return bless { name => $name }, $class }
    sub DESTROY { print "destroyed: $_[0]{name}\n" }
}

require "$FindBin::Bin/lib/held.pl";
print "Content-Type: text/plain\n\n";
no warnings 'once';
print "page: $Held::object->{name}\n";
