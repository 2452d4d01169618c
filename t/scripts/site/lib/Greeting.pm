package Greeting;
# A module a script `use lib`s: never to be fetched.
our $SECRET = "module source";
1;
