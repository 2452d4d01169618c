# Plack::App::WrapCGI (CGI::Compile) under plackup -s FCGI --nproc N
# (FCGI::ProcManager), deployment environment (no development middleware).
# Sourced by bench/run.

start_plack_wrapcgi() {
    local sock=$tmp/plack.sock args=() m
    for m in "${preload[@]}"; do args+=(-M "$m"); done
    fastcgi_backend plack-wrapcgi "$sock" \
        plackup -E deployment -s FCGI --nproc "$workers" --listen "$sock" \
        "${args[@]}" "$bench/peers/wrapcgi.psgi"
}
