#!/usr/bin/perl
# Classes a script declares for itself with the usual builders (Moo,
# Class::Accessor, constant, an Exporter package of its own): each request
# builds them as a new process does, whatever the builders recorded of an
# earlier request's classes of the same name.
use strict;
use warnings;

package CheckPoint {
    use Moo;
    has x => (is => 'ro', default => 1);
    sub twice { $_[0]->x * 2 }
}
package CheckPoint3 {
    use Moo;
    extends 'CheckPoint';
    has z => (is => 'rw', default => 3);
}
package CheckAccessor {
    use parent -norequire, 'Class::Accessor';
    BEGIN { require Class::Accessor }
    __PACKAGE__->mk_accessors(qw(name));
}
package CheckExporter {
    use Exporter 'import';
    BEGIN { our @EXPORT_OK = qw(exported) }
    sub exported { 'exported' }
}
BEGIN { CheckExporter->import('exported') }
use constant { CHECK_PI => 3, CHECK_E => 2 };

my $p = CheckPoint3->new(x => 2);
print "Content-Type: text/plain\n\n",
    "moo: twice=", $p->twice, " z=", $p->z, "\n",
    "accessor: ", CheckAccessor->new({ name => 'n' })->name, "\n",
    "exporter: ", exported(), "\n",
    "constant: ", CHECK_PI + CHECK_E, "\n";
