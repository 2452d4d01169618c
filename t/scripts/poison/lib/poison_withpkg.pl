# Library with its own package (poison/require-withpkg.pl).
package PoisonWithPkg;
our $loads;
$loads++;
sub hello { return 'with package' }
1;
