# The binary `install -m 0755 target/release/fcgi-spawn /usr/local/bin/`
# ships: no debug info (with it the release build was 38 MB), a sensible
# size, and its symbol table, by which bench/cost's callgrind counts the
# runner's steps and zeroes a fork-mode child's counts
# (--zero-before=fcgi_spawn::signals::reset_for_request_child).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use FcgiSpawn::Test;

my $bin = bin_path();
my ($readelf, $nm) = map {
    my $prog = $_;
    my ($dir) = grep { -x "$_/$prog" } split /:/, "$ENV{PATH}:/usr/bin";
    $dir ? "$dir/$prog" : undef;
} 'readelf', 'nm';
plan skip_all => 'needs readelf and nm (binutils, from build-essential)' unless $readelf && $nm;

my @sections = map { /^\s*\[\s*\d+\]\s+(\S+)/ ? $1 : () } `$readelf -S -W $bin`;
ok scalar(grep { $_ eq '.text' } @sections), "readelf lists the sections of $bin";
is_deeply [ grep { /^\.debug_/ } @sections ], [], 'no debug sections';
ok scalar(grep { $_ eq '.symtab' } @sections), 'a symbol table';
my $size = -s $bin;
cmp_ok $size, '<', 16 * 1024 * 1024, sprintf 'under 16 MiB (%.1f MiB)', $size / 1024 / 1024;

my @symbols = `$nm -C $bin`;
for my $name (qw(fcgi_spawn::signals::reset_for_request_child fcgi_spawn::runner::steps::PerlSteps::finish_request)) {
    ok scalar(grep { /\Q$name\E/ } @symbols), "$name is named (bench/cost counts by it)";
}

done_testing;
