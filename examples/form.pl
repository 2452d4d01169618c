#!/usr/bin/perl
# A form that POSTs to itself and echoes every field, HTML-escaped.
use strict;
use warnings;
use CGI;

my $q = CGI->new;
print $q->header(-type => 'text/html', -charset => 'utf-8');
print <<'HTML';
<!DOCTYPE html>
<html><head><title>Form</title></head><body>
<h1>Form</h1>
<form method="post" action="form.pl">
<p><label>Name <input name="name"></label></p>
<p><label>Colour <select name="colour"><option>red</option><option>green</option><option>blue</option></select></label></p>
<p><label>Comment<br><textarea name="comment" rows="3" cols="40"></textarea></label></p>
<p><label><input type="checkbox" name="tags" value="perl"> perl</label>
   <label><input type="checkbox" name="tags" value="cgi"> cgi</label></p>
<p><button type="submit">Send</button></p>
</form>
HTML
if ($q->request_method eq 'POST') {
    print "<h2>You sent</h2>\n<dl>\n";
    for my $name (sort $q->param) {
        print '<dt>', $q->escapeHTML($name), "</dt>\n";
        print '<dd>', $q->escapeHTML($_), "</dd>\n" for $q->multi_param($name);
    }
    print "</dl>\n";
}
print qq{<p><a href="index.cgi">Back</a></p>\n</body></html>\n};
