#!/usr/bin/perl
# Prints the special variables a script may leave changed: the separators,
# $_, the selected handle and $| (of STDOUT and of the selected handle), $^W,
# $^R, $@, $?.
# The report goes to STDOUT explicitly, so a leaked select shows as such.
use strict;
use warnings;

sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    (my $s = $v) =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return "'$s'";
}
my $selected = select;
my $selected_af = $|;
my $stdout_af = do { my $old = select STDOUT; my $v = $|; select $old; $v };
my $r = join '',
    'irs=', show($/), "\n",
    'ors=', show($\), "\n",
    'ofs=', show($,), "\n",
    'subsep=', show($;), "\n",
    'list_separator=', show($"), "\n",
    'topic=', show($_), "\n",
    "selected=$selected\n",
    "selected_autoflush=$selected_af\n",
    "stdout_autoflush=$stdout_af\n",
    "warnings_flag=$^W\n",
    'last_regex_code_result=', show($^R), "\n",
    'eval_error=', show($@), "\n",
    'child_status=', show($?), "\n";
{
    local ($\, $,);
    print STDOUT "Content-Type: text/plain\n\n", $r;
}
