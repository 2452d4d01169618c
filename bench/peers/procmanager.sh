# The FCGI::ProcManager peers (Perl servers beside this file):
#   fcgi-spawn-style.pl  FCGI + ProcManager + CGI::Fast, `do $script` per request
#   compile-once.pl      FCGI + ProcManager, script compiled once into a sub
# Sourced by bench/run.

start_procmanager() {    # start_procmanager NAME SERVER.pl
    local sock=$tmp/$1.sock args=() m
    for m in "${preload[@]}"; do args+=(--preload "$m"); done
    fastcgi_backend "$1" "$sock" \
        perl "$bench/peers/$2" --listen "$sock" --nproc "$workers" "${args[@]}"
}
start_fcgi_spawn_style() { start_procmanager fcgi-spawn-style fcgi-spawn-style.pl; }
start_compile_once()     { start_procmanager compile-once compile-once.pl; }
