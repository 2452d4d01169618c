# fcgi-spawn, the contender: --isolation perlrun (a fresh package and a
# compile per request), --isolation registry (compiled once per worker) and
# --isolation fork (compiled once per worker, run in a child per request).
# Sourced by bench/run (see "contender launchers" there).

start_fcgi_spawn() {    # start_fcgi_spawn ISOLATION
    local sock=$tmp/spawn-$1.sock args=() m
    for m in "${preload[@]}"; do args+=(--preload "$m"); done
    fastcgi_backend "fcgi-spawn-$1" "$sock" \
        "$fcgi_spawn_bin" run --listen "$sock" --workers "$workers" --isolation "$1" \
        "${args[@]}" --root "$docroot" --backlog 1024
}
start_spawn_perlrun()  { start_fcgi_spawn perlrun; }
start_spawn_registry() { start_fcgi_spawn registry; }
start_spawn_fork()     { start_fcgi_spawn fork; }
