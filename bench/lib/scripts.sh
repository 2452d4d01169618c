# bench/lib/scripts.sh: the benchmark's scripts and the document root they
# run from. Sourced by bench/run.

all_scripts=(hello page big post output gitweb)
quick_scripts=(hello page)

# script_spec NAME: sets spec_file (under the docroot), spec_query,
# spec_marker (a string every good response body contains), spec_post
# (request body size in bytes, empty for GET) and spec_title.
script_spec() {
    spec_query= spec_post=
    case $1 in
        hello)  spec_file=hello.pl  spec_marker="Hello, world"
                spec_title="CGI.pm hello world" ;;
        page)   spec_file=page.pl   spec_marker="<!-- page.pl: 200 rows -->"
                spec_title="typical page: CGI.pm + POSIX + List::Util, 200-row HTML table" ;;
        big)    spec_file=big.pl    spec_marker="big.pl: 5000 lines, sum=446"
                spec_title="generated 5,000-line script (compile cost)" ;;
        post)   spec_file=post.pl   spec_marker="post.pl: data 1048571 bytes, 1048571 x"
                spec_post=1048576
                spec_title="POST of a 1 MiB urlencoded form field, read with CGI.pm" ;;
        output) spec_file=output.pl spec_marker="output.pl: 5242880 bytes"
                spec_title="5 MiB response" ;;
        gitweb) spec_file=gitweb.cgi spec_query="p=bench.git;a=summary"
                spec_marker="bench commit 20</a>"
                spec_title="gitweb (Debian's gitweb.cgi, 8,500 lines): summary page of a 20-commit repository" ;;
        *) die "unknown script '$1' (known: ${all_scripts[*]})" ;;
    esac
}

# setup_docroot: $docroot with the scripts, the generated big.pl, a copy of
# Debian's gitweb.cgi; a small git repository for it and $gitweb_conf.
# Readable by all: Apache's children run as www-data.
setup_docroot() {
    docroot=$tmp/www
    mkdir -p "$docroot"
    chmod 755 "$tmp"
    cp "$bench"/scripts/{hello,page,post,output,slow}.pl "$docroot/"
    perl "$bench/scripts/gen-big.pl" "$docroot/big.pl" 5000
    install -m 755 /usr/share/gitweb/gitweb.cgi "$docroot/gitweb.cgi"
    setup_git_repo "$tmp/git"
    gitweb_conf=$tmp/gitweb.conf
    cat >"$gitweb_conf" <<CONF
# gitweb configuration for bench/run
our \$projectroot = "$tmp/git";
our \$GIT = "/usr/bin/git";
our \$site_name = "bench";
# The repository belongs to root; Apache's gitweb runs as www-data.
\$ENV{GIT_CONFIG_COUNT} = 1;
\$ENV{GIT_CONFIG_KEY_0} = "safe.directory";
\$ENV{GIT_CONFIG_VALUE_0} = "*";
CONF
    chmod -R a+rX "$tmp/www" "$tmp/git" "$gitweb_conf"
}

# setup_git_repo DIR: DIR/bench.git, bare, 20 commits on main.
setup_git_repo() {
    local work=$tmp/git-work i
    mkdir -p "$1" "$work"
    git -C "$work" init -q -b main
    for i in $(seq 1 20); do
        echo "line $i" >>"$work/file.txt"
        git -C "$work" add file.txt
        GIT_AUTHOR_DATE="2024-01-$(printf %02d "$i")T12:00:00Z" \
        GIT_COMMITTER_DATE="2024-01-$(printf %02d "$i")T12:00:00Z" \
            git -C "$work" -c user.name=Bench -c user.email=bench@example.invalid \
            commit -q -m "bench commit $i"
    done
    git clone -q --bare "$work" "$1/bench.git"
    echo "fcgi-spawn bench repository" >"$1/bench.git/description"
    rm -rf "$work"
}

# wrk_lua NAME: writes $tmp/NAME.lua (request + response check) for script NAME.
wrk_lua() {
    script_spec "$1"
    {
        echo "marker = [==[$spec_marker]==]"
        if [[ -n $spec_post ]]; then
            echo 'wrk.method = "POST"'
            echo "wrk.body = \"data=\" .. string.rep(\"x\", $spec_post - 5)"
            echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
        fi
        cat "$bench/lib/check.lua"
    } >"$tmp/$1.lua"
    if [[ -n $spec_post ]]; then    # the same body for the probe and perl-loop.pl
        perl -e 'print "data=", "x" x ($ARGV[0] - 5)' "$spec_post" >"$tmp/$1.body"
    fi
}
