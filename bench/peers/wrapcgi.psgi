# Plack peer: Plack::App::WrapCGI (CGI::Compile: the script compiled once
# per worker into a sub) for whatever file nginx names in SCRIPT_FILENAME.
# Run under: plackup -s FCGI --nproc N --listen SOCK wrapcgi.psgi
use strict;
use warnings;
use Plack::App::WrapCGI;

# A client that goes away mid-response (every wrk run ends so) would
# otherwise kill the worker with SIGPIPE: the handler does not ignore it.
$SIG{PIPE} = 'IGNORE';

my %apps;
sub {
    my ($env) = @_;
    my $script = $env->{SCRIPT_FILENAME};
    my $app = $apps{$script} //= Plack::App::WrapCGI->new(script => $script)->to_app;
    return $app->($env);
};
