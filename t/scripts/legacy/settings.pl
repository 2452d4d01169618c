# Configuration read with do FILE, returning a hash ref.
{ colour => 'blue', items => 3 };
