# Ceiling: nginx answering "return 200" with the script's marker, no
# FastCGI. (The other ceiling, perl-loop.pl, is not a server: bench/run
# calls measure_perl_loop for it.) Sourced by bench/run.

start_nginx_return() {
    start_nginx nginx-return return || return 1
    backend_pid=$nginx_pid    # its worker is the "worker"
    url_base=http://127.0.0.1:$nginx_port
}
