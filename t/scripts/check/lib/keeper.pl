# Preloaded by t/59-fork-child-exit.t: a module of the worker's whose sub
# keeps one of its file lexicals, an object that says when it goes. A
# script imports the sub; the object stays the worker's, which a request's
# child never destroys.
package Keeper;
use strict;
use warnings;

my $object = bless {}, 'Keeper::Object';
sub kept { return $object }

package Keeper::Object;
sub DESTROY { print "destroyed: the worker's object\n" }

1;
