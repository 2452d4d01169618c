#!/usr/bin/perl
# Reports the interpreter state iso-set.pl tampers with, one key=value a line.
use strict;
use warnings;
no warnings qw(once);
use Cwd qw(getcwd);
use File::Basename qw(dirname);

my %r;
$r{our_global}  = defined $main::our_global ? $main::our_global : 'undef';
$r{main_global} = defined $main::main_global ? $main::main_global : 'undef';
$r{leaky_var}   = defined $Leaky::Pkg::var ? $Leaky::Pkg::var : 'undef';
$r{leaky_sub}   = defined &Leaky::Pkg::leaked_sub ? 'defined' : 'undef';
$r{env_leak}    = defined $ENV{ISO_LEAK} ? $ENV{ISO_LEAK} : 'undef';
$r{env_path}    = defined $ENV{PATH} ? ($ENV{PATH} eq '/nonexistent' ? 'leaked' : 'ok') : 'undef';
$r{env_home}    = defined $ENV{HOME} ? 'set' : 'undef';
$r{dollar0}     = $0 =~ /iso-set-changed/ ? 'leaked' : ($0 =~ /iso-check\.pl$/ ? 'script' : "other:$0");
$r{umask}       = sprintf '%04o', umask;
$r{sig_usr2}    = defined $SIG{USR2} ? $SIG{USR2} : 'undef';
$r{sig_alrm}    = defined $SIG{ALRM} ? (ref $SIG{ALRM} ? 'code' : $SIG{ALRM}) : 'undef';
$r{sig_warn}    = defined $SIG{__WARN__} ? 'set' : 'undef';
$r{left_open}   = defined $main::LEFT_OPEN ? 'leaked' : 'undef';
$r{cwd_is_script_dir} = getcwd() eq Cwd::abs_path(dirname(__FILE__)) ? 1 : 0;
$r{cwd}         = getcwd();
$r{irs}         = defined $/ ? ($/ eq "\n" ? 'newline' : "other:$/") : 'undef';
$r{ofs}         = defined $, ? "set:$," : 'undef';
$r{ors}         = defined $\ ? 'set' : 'undef';
$r{selected}    = select() eq 'main::STDOUT' ? 'STDOUT' : 'other:' . select();
$r{autoflush}   = $| ? 1 : 0;
$r{layers}      = join ',', PerlIO::get_layers(STDOUT);
$r{inc_leak}    = (grep { $_ eq '/nonexistent/iso-leak-lib' } @INC) ? 'leaked' : 'clean';
$r{inc_count}   = scalar @INC;
print "Content-Type: text/plain\n\n";
print "$_=$r{$_}\n" for sort keys %r;
