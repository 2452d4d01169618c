# The checker's own configuration under the poisoner's relative name.
sub poison_config_sub { return 'check config sub' }
{ colour => 'green' };
