#!/bin/bash
# The load balancer of kind clusters with several control planes, for machines without
# registry access: kind runs `envoy -c /home/envoy/envoy.yaml` in this image and writes
# envoy's file-based dynamic config (lds.yaml: the listener port; cds.yaml: the API servers).
# This stand-in reads those two files and runs HAProxy (Debian's) with the same listener,
# round robin and /healthz checks over TLS, restarting it whenever kind rewrites them.
set -u
dir=/home/envoy
cfg=/run/haproxy.cfg
pid=
render() {
    local port backends
    port=$(awk '$1 == "port_value:" {print $2; exit}' "$dir/lds.yaml" 2>/dev/null)
    backends=$(awk '$1 == "address:" && NF == 2 {addr = $2}
                    $1 == "port_value:" && addr != "" {print addr ":" $2; addr = ""}' \
               "$dir/cds.yaml" 2>/dev/null)
    [ -n "$port" ] && [ -n "$backends" ] || return 1
    {
        printf 'global\n  maxconn 4096\n'
        printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n'
        printf 'frontend kube_apiservers\n  bind *:%s\n  default_backend kube_apiservers\n' "$port"
        printf 'backend kube_apiservers\n  balance roundrobin\n  option httpchk GET /healthz\n'
        local i=0 b
        for b in $backends; do
            i=$((i + 1))
            printf '  server s%d %s check check-ssl verify none inter 2s fall 2 rise 1 init-addr last,libc,none\n' "$i" "$b"
        done
    } > "$cfg.new"
    mv "$cfg.new" "$cfg"
}
last=
while true; do
    now=$(cat "$dir/lds.yaml" "$dir/cds.yaml" 2>/dev/null | md5sum)
    if [ "$now" != "$last" ] && render; then
        last=$now
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
        haproxy -f "$cfg" -db &
        pid=$!
        echo "haproxy: $(grep -c '^  server' "$cfg") API server(s)"
    fi
    sleep 1
done
