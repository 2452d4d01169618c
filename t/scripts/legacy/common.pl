# A legacy library file: no package line, shared by several scripts.
our $site_name = 'Legacy Site';
sub page_header { return "Content-Type: text/plain\n\n== $site_name ==\n" }
sub greet { my ($who) = @_; return "hello, $who" }
1;
