package FCGI::Spawn::Modules;

# What the worker knows of particular modules from the system @INC. Such a
# module is the worker's: loaded once, shared by every script, and a
# script's writes into it are the documented limit. A few keep state that
# a CGI process would start without, and are put back after every request:
#
#   - per-request globals with a reset of their own (CGI.pm, CGI::Simple);
#   - settings in package scalars that scripts set for themselves, with no
#     reset (CGI::Carp's fatalsToBrowser and set_message, Data::Dumper's
#     Indent, Carp's Verbose, Text::Wrap's columns, Storable's canonical,
#     CGI::Fast's request and file handles): back to their values as loaded;
#   - FCGI's accept, which a CGI process passes once (`while (CGI::Fast->new)`
#     runs its body once): once per request here.
#
# And some keep a record of every package they served (importers, class
# builders): when a script's package goes, they forget it (forget), so
# that a package made again under that name is served afresh and perlrun's
# new package per request does not pile records up.

use strict;
use warnings;

our $VERSION = '0.1.0';

our $ACCEPTED = 0;    # FCGI accepts this request made (see cgi_accept)

my @WITH_SETTINGS = qw(CGI::Carp Data::Dumper Carp Text::Wrap Storable CGI::Fast);
my %WATCHED;    # package => 1: its scalars are watched

# Their resets: reset_request_state.
my @WITH_REQUEST_STATE = qw(CGI CGI::Simple CGI::Fast);

for my $package (@WITH_SETTINGS) {
    (my $file = "$package.pm") =~ s{::}{/}g;
    $FCGI::Spawn::Loader::AFTER_LOAD{$file} = sub { watch_scalars($package) };
}
$FCGI::Spawn::Loader::AFTER_LOAD{'FCGI.pm'} = \&accept_once_per_request;

# The modules of the list already loaded (preloaded before the runner
# installed its require): their values as they are now are as loaded.
sub take_loaded {
    for my $package (@WITH_SETTINGS) {
        (my $file = "$package.pm") =~ s{::}{/}g;
        watch_scalars($package) if $INC{$file};
    }
    accept_once_per_request() if $INC{'FCGI.pm'};
    return;
}

# The package's scalars, with their values as loaded: the glue puts back
# those a request wrote (their set magic tells it), after each request.
sub watch_scalars {
    my ($package) = @_;
    return if $WATCHED{$package};
    $WATCHED{$package} = 1;
    my $stash = FCGI::Spawn::Symbols::stash_of($package) or return;
    FCGI::Spawn::Native::watch_scalars(
        map { \$stash->{$_} } grep { ref \$stash->{$_} eq 'GLOB' && !/::\z/ } keys %$stash);
    return;
}

# After each request (the watched settings: FCGI::Spawn::Native::
# leave_request). A statement per module, not a sub: a call cost more
# than its test.
sub reset_request_state {
    CGI::_reset_globals() if defined &CGI::_reset_globals;
    CGI::Simple::_reset_globals() if defined &CGI::Simple::_reset_globals;
    # CGI::Fast's handles live in lexicals of its own; an empty list sets
    # them back to none (its default: STDIN, STDOUT, STDERR).
    CGI::Fast->file_handles({}) if defined &CGI::Fast::file_handles;
    $ACCEPTED = 0;
    return;
}

# The plain (non-reference) scalars of the modules with request state:
# where `use CGI qw(-nosticky)` and its like leave their mark. A registry
# script keeps what its compile changed there (changed_scalars), and gets
# it back before each run (set_scalars).
sub scalars {
    return FCGI::Spawn::Native::plain_scalars(@WITH_REQUEST_STATE, @WITH_SETTINGS);
}

sub changed_scalars {
    my ($before) = @_;
    my $after = scalars();
    my %changed = map { $_ => $after->{$_} }
        grep { !exists $before->{$_} || $before->{$_} ne $after->{$_} } keys %$after;
    return \%changed;
}

sub set_scalars {
    my ($values) = @_;
    no strict 'refs';
    ${$_} = $values->{$_} for keys %$values;
    return;
}

# --- FCGI's accept -----------------------------------------------------------

# Under CGI, FCGI finds no FastCGI socket on fd 0 and its Accept returns 0
# once, then -1 for the rest of the process (a C static in FCGI.so, out of
# reach): `while (my $q = CGI::Fast->new) { ... }` runs its body once. In a
# worker the process goes on, so the first request would be the only one.
# Accept is answered here instead, once per request; a script that opened
# a FastCGI socket of its own (FCGI::OpenSocket) still gets FCGI's.

sub accept_once_per_request {
    my $xs_accept = \&FCGI::Accept;
    return if $xs_accept == \&cgi_accept;
    no warnings 'redefine';
    *FCGI::Accept = \&cgi_accept;
    *FCGI::Spawn::Modules::fcgi_accept = $xs_accept;
    return;
}

sub cgi_accept ($) {
    my ($request) = @_;
    return fcgi_accept(@_) if $request->IsFastCGI;
    return $ACCEPTED++ ? -1 : 0;
}

# --- records per package -----------------------------------------------------

# module's %INC key => code that forgets one package in that module's records
my @RECORDS = (
    [ 'Log/Log4perl.pm' => sub {
        my ($package) = @_;
        no warnings 'once';
        delete $Log::Log4perl::IMPORT_CALLED{$package};
        delete $Log::Log4perl::EASY_CLOSURES->{$package} if ref $Log::Log4perl::EASY_CLOSURES;
        my $loggers = $Log::Log4perl::Logger::LOGGERS_BY_NAME;
        if (ref $loggers) {
            (my $category = $package) =~ s/::/./g;
            delete @$loggers{ $package, $category };
        }
    } ],
    [ 'Exporter.pm' => sub {
        no warnings 'once';
        delete $Exporter::Cache{ $_[0] };
        delete $Exporter::FailCache{ $_[0] };
    } ],
    [ 'Moo.pm' => sub {
        no warnings 'once';
        delete $Moo::MAKERS{ $_[0] };
    } ],
    [ 'Role/Tiny.pm' => sub {
        no warnings 'once';
        delete $Role::Tiny::INFO{ $_[0] };
        delete $Role::Tiny::APPLIED_TO{ $_[0] };
    } ],
    [ 'Class/Method/Modifiers.pm' => sub {
        no warnings 'once';
        delete $Class::Method::Modifiers::MODIFIER_CACHE{ $_[0] };
    } ],
    [ 'Class/MOP.pm' => sub {
        Class::MOP::remove_metaclass_by_name($_[0]) if defined &Class::MOP::remove_metaclass_by_name;
    } ],
);

# constant.pm records each constant it made by its full name.
my $CONSTANTS_SEEN = 0;

# The forgetters of the modules of @RECORDS loaded now, found again only
# when the size of %INC changed: perlrun forgets a package every request,
# and looking each module up every time cost more than the forgetting.
my @LOADED_RECORDS;
my $RECORDS_INC_COUNT = -1;

# The packages are gone: the modules that recorded them forget them.
sub forget {
    my (@packages) = @_;
    return unless @packages;
    if (keys %INC != $RECORDS_INC_COUNT) {
        @LOADED_RECORDS = map { $_->[1] } grep { $INC{ $_->[0] } } @RECORDS;
        $RECORDS_INC_COUNT = keys %INC;
    }
    for my $forget_package (@LOADED_RECORDS) {
        $forget_package->($_) for @packages;
    }
    no warnings 'once';
    if ($INC{'constant.pm'} && keys %constant::declared != $CONSTANTS_SEEN) {
        my $gone = join '|', map { quotemeta } @packages;
        delete @constant::declared{ grep { /\A(?:$gone)::/ } keys %constant::declared };
        $CONSTANTS_SEEN = keys %constant::declared;
    }
    return;
}

1;

__END__

=head1 NAME

FCGI::Spawn::Modules - what the fcgi-spawn runner puts back of particular modules

=head1 DESCRIPTION

Used by L<FCGI::Spawn::Runner> and the modules it runs the steps with
inside the daemon; not meant for scripts.
C<reset_request_state> runs after every request: CGI.pm's and
CGI::Simple's globals, the settings scripts set in CGI::Carp, Data::Dumper,
Carp, Text::Wrap, Storable and CGI::Fast, and FCGI's accept (once per
request, as once per CGI process). C<forget> makes the importers and class
builders that keep a record per package (Log::Log4perl, Exporter, constant,
Moo, Role::Tiny, Class::Method::Modifiers, Class::MOP) forget the packages
a request deleted.

=cut
