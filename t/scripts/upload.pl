#!/usr/bin/perl
# CGI.pm multipart upload: reports file name, size, MD5, the temp file CGI.pm
# used (so the test can check it is gone afterwards) and the other fields.
use strict;
use warnings;
use CGI;
use Digest::MD5;

my $q = CGI->new;
print $q->header('text/plain');
my $fh = $q->upload('file');
if (!$fh) {
    print "no upload\n";
    exit 0;
}
binmode $fh;
my $md5 = Digest::MD5->new;
my $size = 0;
while (read $fh, my $buf, 65536) {
    $size += length $buf;
    $md5->add($buf);
}
print 'filename=', scalar $q->param('file'), "\n";
print "size=$size\n";
print 'md5=', $md5->hexdigest, "\n";
print 'tmpfile=', ($q->tmpFileName(scalar $q->param('file')) || ''), "\n";
my $note = $q->param('note');
print 'note=', (defined $note ? $note : ''), "\n";
