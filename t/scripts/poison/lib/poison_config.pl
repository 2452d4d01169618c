# Configuration for do FILE, no package line (poison/do-nopkg.pl).
sub poison_config_sub { return 'config sub' }
{ colour => 'red' };
