#!/usr/bin/perl
# multipart/form-data upload: shows the file's name, size and MD5.
use strict;
use warnings;
use CGI;
use Digest::MD5;

my $q = CGI->new;
print $q->header(-type => 'text/html', -charset => 'utf-8');
print <<'HTML';
<!DOCTYPE html>
<html><head><title>Upload</title></head><body>
<h1>Upload</h1>
<form method="post" action="upload.pl" enctype="multipart/form-data">
<p><input type="file" name="file"> <button type="submit">Upload</button></p>
</form>
HTML
my $fh = $q->upload('file');
if ($fh) {
    binmode $fh;
    my $md5 = Digest::MD5->new;
    my $size = 0;
    while (read $fh, my $buf, 65536) {
        $size += length $buf;
        $md5->add($buf);
    }
    my $name = $q->param('file');
    my $info = $q->uploadInfo($name) || {};
    printf "<table>\n<tr><th>File</th><td>%s</td></tr>\n<tr><th>Type</th><td>%s</td></tr>\n"
         . "<tr><th>Size</th><td id=\"size\">%d</td></tr>\n<tr><th>MD5</th><td id=\"md5\">%s</td></tr>\n</table>\n",
        $q->escapeHTML("$name"), $q->escapeHTML($info->{'Content-Type'} || 'unknown'), $size, $md5->hexdigest;
}
elsif (my $err = $q->cgi_error) {
    print '<p>Upload failed: ', $q->escapeHTML($err), "</p>\n";
}
print qq{<p><a href="index.cgi">Back</a></p>\n</body></html>\n};
