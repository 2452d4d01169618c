#!/usr/bin/perl
# Replaces a sub of a module the daemon preloads (CGI::escapeHTML) in the
# way ?how= names, after printing what it returns as the run starts: under
# CGI every run starts with CGI.pm's own sub, and so must every run on a
# worker, whatever the runs before it did.
use strict;
use warnings;
use CGI ();

sub poisoned { return 'poisoned' }

# Moose's way (Package::Stash::XS when installed: XS sets the glob's sub).
my $have_stash = eval { require Package::Stash; 1 };

my %WAY = (
    glob_assign => sub { no warnings 'redefine'; *CGI::escapeHTML = sub { 'poisoned' } },
    symbolic    => sub { no strict 'refs'; no warnings 'redefine'; *{'CGI::escapeHTML'} = \&poisoned },
    list_assign => sub { no warnings 'redefine'; (*CGI::escapeHTML) = (\&poisoned) },
    in_a_sub    => sub { replace_it() },
    package_stash => sub { Package::Stash->new('CGI')->add_symbol('&escapeHTML' => \&poisoned) if $have_stash },
    do_file     => sub {
        (my $file = __FILE__) =~ s{[^/]+\z}{lib/redefine_escape.pl};
        do $file or die $@ || "$file: $!";
    },
);

sub replace_it {
    no warnings 'redefine';
    *CGI::escapeHTML = \&poisoned;
    return;
}

my ($how) = ($ENV{QUERY_STRING} // '') =~ /how=(\w+)/;
print "Content-Type: text/plain\n\n", 'escapeHTML as the run starts: ', CGI::escapeHTML('<&>'), "\n";
$WAY{$how}->() if $how && $WAY{$how};
print 'replaced by: ', $how // 'nothing', ', now: ', CGI::escapeHTML('<&>'), "\n";
