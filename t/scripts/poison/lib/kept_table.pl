# A plain library file (no package line) of lookup tables, as AWStats'
# lib/*.pm are: it fills the tables of the package that requires it.
# Each load is written down in $ENV{FCGI_SPAWN_TABLE_LOADS}, if set, so a
# test can count the loads.
%Colour = (red => 'ff0000', green => '00ff00', blue => '0000ff');
@Order  = qw(red green blue);
$Count  = 1;
if (my $log = $ENV{FCGI_SPAWN_TABLE_LOADS}) {
    open my $fh, '>>', $log or die "$log: $!";
    print {$fh} "loaded by $$\n";
    close $fh;
}
1;
