# fcgiwrap: plain CGI, a fork and exec of perl per request; -c N processes.
# Sourced by bench/run.

start_fcgiwrap() {
    local sock=$tmp/fcgiwrap.sock
    fastcgi_backend fcgiwrap "$sock" \
        "$(command -v fcgiwrap || echo /usr/sbin/fcgiwrap)" -s "unix:$sock" -c "$workers"
}
