# Done with do FILE; own package, counts its runs (poison/do-withpkg.pl).
package PoisonDoPkg;
our $runs;
$runs++;
1;
