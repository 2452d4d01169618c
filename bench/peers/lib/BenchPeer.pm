package BenchPeer;
# Shared by the Perl peers of bench/run: the FastCGI listening socket and
# ProcManager pool, "compile the script once into a sub", "exit ends the
# script, not the process", and the preloads given on the command line.

# First, before any pragma: a string eval here sees no 'use strict' of this
# file, so a script compiles with its own pragmas only, as under CGI.
sub _compile_clean { eval $_[0] }    ## no critic

use strict;
use warnings;
use FCGI;
use POSIX ();

our $EXIT = "BenchPeer: exit\n";

# exit() in a script ends the request, not the worker, as FCGI::Spawn's
# callout and ModPerl::Registry do. Code compiled after this (the scripts,
# but also FCGI::ProcManager) calls the override; only while $IN_SCRIPT is
# set does it stop at the script.
our $IN_SCRIPT = 0;
BEGIN {
    *CORE::GLOBAL::exit = sub { die $EXIT if $IN_SCRIPT; CORE::exit(@_ ? $_[0] : 0) };
}

# parse_args(@ARGV) -> { listen => PATH, nproc => N, preload => [..] }
# Empties @ARGV: a script must not see the server's arguments (gitweb
# would take --nproc for its own and start a process manager).
sub parse_args {
    my @args = @_;
    @ARGV = ();
    my %opt = (nproc => 2, preload => []);
    while (@args) {
        my $k = shift @args;
        if    ($k eq '--listen')  { $opt{listen} = shift @args }
        elsif ($k eq '--nproc')   { $opt{nproc}  = shift @args }
        elsif ($k eq '--preload') { push @{ $opt{preload} }, shift @args }
        else                      { die "unknown argument $k\n" }
    }
    return \%opt;
}

sub preload {
    my ($modules) = @_;
    for my $m (@$modules) {
        (my $file = "$m.pm") =~ s{::}{/}g;
        require $file;
    }
}

# The listening socket, opened once in the manager before the fork so that
# every worker accepts on it (what spawn-fcgi or FCGI::Spawn do).
sub open_socket {
    my ($path) = @_;
    unlink $path;
    my $fd = FCGI::OpenSocket($path, 1024);
    die "cannot listen on $path\n" unless defined $fd && $fd >= 0;
    chmod 0666, $path;
    return $fd;
}

# Fork N workers with FCGI::ProcManager; returns in each worker.
sub manage {
    my ($nproc) = @_;
    require FCGI::ProcManager;
    my $pm = FCGI::ProcManager->new({ n_processes => $nproc });
    $pm->pm_manage;
    return $pm;
}

# compile_file(PATH) -> CODE: the script's source wrapped in a sub in a
# package of its own (as ModPerl::Registry does); __END__/__DATA__ and what
# follows are dropped.
my $n = 0;
sub compile_file {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    my $src = do { local $/; <$fh> };
    $src =~ s/^__(?:END|DATA)__\b.*//ms;
    $n++;
    my $code = _compile_clean(
        "package BenchPeer::Script$n; sub {\n#line 1 \"$file\"\n$src\n;}");
    die "compiling $file: $@" unless ref $code eq 'CODE';
    return $code;
}

# run_guarded(CODE): call it; exit() is a normal end, die is logged.
sub run_guarded {
    my ($code) = @_;
    local $IN_SCRIPT = 1;
    local @ARGV = ();
    my $ok = eval { $code->(); 1 };
    warn $@ if !$ok && $@ ne $EXIT;
}

# CGI.pm keeps per-request state in globals; reset them as CGI::Fast does.
sub reset_cgi { CGI->_reset_globals if defined &CGI::_reset_globals }

1;
