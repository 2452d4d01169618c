# Apache 2.4 + mod_perl2, ModPerl::Registry and ModPerl::PerlRun: its own
# config in the temp dir, prefork MPM with exactly N children, listening on
# 127.0.0.1:free port, KeepAlive On (Apache's default), measured the two
# ways its users run it:
# - modperl-*: behind the same nginx as the FastCGI contenders, proxy_pass
#   with upstream keepalive (a child serves a kept nginx connection until
#   MaxKeepAliveRequests or KeepAliveTimeout);
# - modperl-*-direct: hit by wrk directly with as many connections as it
#   has children (its best case: more clients than children would wait
#   for a child held by an idle kept connection).
# Sourced by bench/run.

apache_modules=/usr/lib/apache2/modules

# apache_conf HANDLER PORT DIR: the whole httpd.conf on stdout.
apache_conf() {
    local handler=$1 port=$2 dir=$3 user=www-data
    id "$user" >/dev/null 2>&1 || user=nobody
    cat <<CONF
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile $dir/httpd.pid
DefaultRuntimeDir $dir
ErrorLog $dir/error.log
LogLevel warn
User $user
Group $(id -gn "$user")
LoadModule mpm_prefork_module $apache_modules/mod_mpm_prefork.so
LoadModule authz_core_module $apache_modules/mod_authz_core.so
LoadModule perl_module $apache_modules/mod_perl.so
StartServers $workers
MinSpareServers $workers
MaxSpareServers $workers
ServerLimit $workers
MaxRequestWorkers $workers
MaxConnectionsPerChild 0
ListenBacklog 1024
KeepAlive On
LimitRequestBody 8388608
PerlModule $handler
$(for m in "${preload[@]}"; do echo "PerlModule $m"; done)
PerlSetEnv GITWEB_CONFIG $gitweb_conf
DocumentRoot $docroot
<Directory />
    Require all denied
</Directory>
<Directory $docroot>
    Require all granted
    Options +ExecCGI
    <FilesMatch "\.(pl|cgi)\$">
        SetHandler perl-script
        PerlResponseHandler $handler
        PerlOptions +ParseHeaders
    </FilesMatch>
</Directory>
CONF
}

start_apache() {    # start_apache NAME HANDLER [proxied]
    local dir=$tmp/$1 port
    port=$(free_port)
    mkdir -p "$dir"
    apache_conf "$2" "$port" "$dir" >"$dir/httpd.conf"
    # setsid: at shutdown the prefork parent signals its whole process group.
    spawn "$dir/stderr.log" setsid /usr/sbin/apache2 -f "$dir/httpd.conf" -DFOREGROUND
    backend_pid=$spawn_pid
    url_base=http://127.0.0.1:$port
    wait_for 20 curl -s -o /dev/null "$url_base/" ||
        { cat "$dir/stderr.log" "$dir/error.log" >&2; return 1; }
    if [[ ${3:-} == proxied ]]; then
        start_nginx "$1" proxy "$port"
        url_base=http://127.0.0.1:$nginx_port
    fi
}
start_modperl_registry()        { start_apache modperl-registry ModPerl::Registry proxied; }
start_modperl_perlrun()         { start_apache modperl-perlrun ModPerl::PerlRun proxied; }
start_modperl_registry_direct() { start_apache modperl-registry-direct ModPerl::Registry; }
start_modperl_perlrun_direct()  { start_apache modperl-perlrun-direct ModPerl::PerlRun; }
