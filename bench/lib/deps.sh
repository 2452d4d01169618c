# bench/lib/deps.sh: install what the bench needs from Debian, only what is
# missing (dpkg-query), non-interactively. Sourced by bench/run.

bench_packages=(
    wrk curl git perl
    nginx-light           # any installed nginx flavour is accepted instead
    fcgiwrap
    libcgi-pm-perl libfcgi-perl libfcgi-procmanager-perl libcgi-fast-perl
    libplack-perl libcgi-compile-perl libcgi-emulate-psgi-perl    # Plack::App::WrapCGI
    apache2 libapache2-mod-perl2
    gitweb awstats        # awstats: the --big-app scenario
    gnuplot-nox
)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

any_nginx_installed() {
    local p
    for p in nginx nginx-light nginx-core nginx-full nginx-extras; do
        is_installed "$p" && return 0
    done
    return 1
}

install_bench_deps() {
    local missing=() pkg sudo=() added_policy=
    for pkg in "${bench_packages[@]}"; do
        [[ $pkg == nginx-light ]] && any_nginx_installed && continue
        is_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        say "Debian packages present"
        return 0
    fi
    say "installing ${missing[*]}"
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    # apache2's and nginx's postinst would start the system services (port
    # 80): forbid that for this install, unless a policy is already there.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0
    { "${sudo[@]}" apt-get update -q &&
      "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
    [[ -n $added_policy ]] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get failed"
}
