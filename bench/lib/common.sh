# bench/lib/common.sh: processes, ports, waiting, memory. Sourced by bench/run.
# Uses $tmp (the run's temp dir). Every process started with `spawn` is
# stopped by PID, with its descendants, by `stop_all` (the EXIT trap).

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

spawned=()    # PIDs started with spawn, in start order

# spawn LOG CMD...: start CMD in the background, output to LOG; sets $spawn_pid.
spawn() {
    local log=$1; shift
    "$@" >>"$log" 2>&1 </dev/null &
    spawn_pid=$!
    spawned+=("$spawn_pid")
}

# descendants PID: PIDs of all live descendants of PID, children first.
descendants() {
    local kid
    for kid in $(pgrep -P "$1" 2>/dev/null); do
        echo "$kid"
        descendants "$kid"
    done
}

# stop PID: TERM it and wait up to 10 s; then TERM, and after 2 s KILL,
# whatever of its descendants is left (e.g. workers of a killed master).
stop() {
    local pid=$1 kids i
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(descendants "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -n $kids ]] || return 0
    kill -TERM $kids 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        kill -0 $kids 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL $kids 2>/dev/null || true
}

# stop_all: stop everything spawned, newest first.
stop_all() {
    local i
    for ((i = ${#spawned[@]} - 1; i >= 0; i--)); do stop "${spawned[i]}"; done
    spawned=()
}

free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1)->sockport'
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s; false if it never succeeds.
wait_for() {
    local tries=$(($1 * 10)); shift
    while ((tries-- > 0)); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

alive() { kill -0 "$1" 2>/dev/null; }

# memory PID...: "count avg_pss_kb avg_private_kb max_private_kb" over the given PIDs
# (from /proc/PID/smaps_rollup; Private = Private_Clean + Private_Dirty).
memory() {
    local pid
    for pid in "$@"; do
        cat "/proc/$pid/smaps_rollup" 2>/dev/null | sed "s/^/$pid /"
    done | awk '
        $2 == "Pss:" { pss[$1] = $3 }
        $2 == "Private_Clean:" || $2 == "Private_Dirty:" { priv[$1] += $3 }
        END {
            n = 0; for (p in pss) { n++; a += pss[p]; b += priv[p]; if (priv[p] > m) m = priv[p] }
            if (n) printf "%d %.0f %.0f %.0f\n", n, a / n, b / n, m; else print "0 0 0 0"
        }'
}

# pkg_version PKG: the installed version of a Debian package, or "-".
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo -; }

# cpu_snapshot FILE / others_cpu BEFORE AFTER: the share of the machine's
# CPU (all cores) used in between by processes that are not this bench's
# (see lib/cpu.pl).
cpu_snapshot() { perl "$bench/lib/cpu.pl" snapshot >"$1"; }
others_cpu() { perl "$bench/lib/cpu.pl" others "$1" "$2" $$; }
