# bench/lib/nginx.sh: the one nginx configuration every FastCGI contender
# (and the nginx ceiling) sits behind. Sourced by bench/run.
# Needs: $tmp, $docroot, $keep_conn (on|off), $gitweb_conf.

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# nginx_location_fastcgi SOCKET: the location block passing scripts to SOCKET.
nginx_location_fastcgi() {
    local keepalive=
    [[ $keep_conn == on ]] && keepalive="keepalive 8;"
    cat <<CONF
    upstream backend {
        server unix:$1;
        $keepalive
    }
    server {
        listen 127.0.0.1:$nginx_port;
        root $docroot;
        location ~ \.(pl|cgi)\$ {
            fastcgi_pass backend;
            fastcgi_keep_conn $keep_conn;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_param GITWEB_CONFIG $gitweb_conf;
        }
    }
CONF
}

# nginx_location_proxy PORT: the location block passing scripts to an
# HTTP backend on 127.0.0.1:PORT (Apache + mod_perl), as its users run it:
# proxy_pass with upstream keepalive (HTTP/1.1, no Connection header).
nginx_location_proxy() {
    cat <<CONF
    upstream backend {
        server 127.0.0.1:$1;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        root $docroot;
        location ~ \.(pl|cgi)\$ {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_buffering on;
        }
    }
CONF
}

# nginx_location_return: the ceiling, "return 200" with each script's
# marker, no FastCGI (the request body, if any, is read and discarded).
nginx_location_return() {
    local name
    echo "    server {"
    echo "        listen 127.0.0.1:$nginx_port;"
    echo "        default_type text/plain;"
    for name in "${all_scripts[@]}"; do
        script_spec "$name"
        echo "        location = /$spec_file { return 200 \"$spec_marker\\n\"; }"
    done
    echo "    }"
}

# start_nginx NAME fastcgi SOCKET | start_nginx NAME proxy PORT | start_nginx NAME return
# Starts nginx (1 worker) on a free port; sets $nginx_port and $nginx_pid.
start_nginx() {
    local name=$1 mode=$2 p=$tmp/nginx-$1
    nginx_port=$(free_port)
    mkdir -p "$p/logs" "$p/tmp"
    # As root, nginx workers would become "nobody" and could not reach the
    # sockets in our temp dir; they stay root (loopback only), as in t/.
    { [[ $(id -u) -eq 0 ]] && echo "user root root;"
      cat <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $p/nginx.pid;
error_log $p/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_max_body_size 8m;
    client_body_buffer_size 2m;
    client_body_temp_path $p/tmp/body;
    proxy_temp_path $p/tmp/proxy;
    fastcgi_temp_path $p/tmp/fastcgi;
    uwsgi_temp_path $p/tmp/uwsgi;
    scgi_temp_path $p/tmp/scgi;
CONF
      case $mode in
          fastcgi) nginx_location_fastcgi "$3" ;;
          proxy)   nginx_location_proxy "$3" ;;
          *)       nginx_location_return ;;
      esac
      echo "}"
    } >"$p/nginx.conf"
    spawn "$p/logs/stderr.log" "$nginx_bin" -p "$p/" -c "$p/nginx.conf" -e "$p/logs/error.log"
    nginx_pid=$spawn_pid
    wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$nginx_port/" ||
        { cat "$p/logs/error.log" >&2; return 1; }
}
