#!/usr/bin/env bash
# Start a Docker engine for the kind driver when none answers. Idempotent; prints the
# engine's version as its last line.
#
#   - installs Debian's docker.io when dockerd is missing;
#   - where the machine's capability bounding set lacks capabilities that Docker grants to
#     --privileged containers (kind nodes are privileged), registers a runc wrapper that
#     drops those capabilities from the container's spec; runc would otherwise refuse with
#     "unable to apply caps: operation not permitted";
#   - starts dockerd in the background (log: /var/log/cka-sim-dockerd.log) and waits until
#     it answers;
#   - on cgroup v1, mounts the controllers missing under /sys/fs/cgroup (see below);
#   - raises the inotify limits to what kind's documentation asks for (see below).
#
# Usage: .ci/kind/engine.sh            (as root)
set -euo pipefail

log() { printf '[engine] %s\n' "$*" >&2; }
die() { printf 'engine.sh: %s\n' "$*" >&2; exit 1; }

answers() { timeout 20 docker version --format '{{.Server.Version}}' 2>/dev/null; }

# cgroup v1: Docker gives a container a cgroup of its own only in the controllers mounted
# under /sys/fs/cgroup. A kind node's systemd mounts the others (hugetlb, net_cls,
# perf_event on some machines) at their root, where kind's entrypoint made no kubelet.slice,
# and the kubelet never starts: "cgroup ["kubelet"] has some missing paths:
# /sys/fs/cgroup/hugetlb/kubelet.slice". Mount every enabled controller, as Debian's
# cgroupfs-mount does.
mount_cgroup_controllers() {
    [[ $(id -u) -eq 0 && ! -f /sys/fs/cgroup/cgroup.controllers ]] || return 0
    mountpoint -q /sys/fs/cgroup || return 0
    local names first name
    while read -r names; do
        first=${names%%,*}
        [[ -e "/sys/fs/cgroup/$first" ]] && continue
        log "mounting the cgroup v1 controllers $names at /sys/fs/cgroup/$names"
        mkdir -p "/sys/fs/cgroup/$names"
        mount -t cgroup -o "$names" cgroup "/sys/fs/cgroup/$names"
        for name in ${names//,/ }; do
            [[ -e "/sys/fs/cgroup/$name" ]] || ln -s "$names" "/sys/fs/cgroup/$name"
        done
    done < <(awk 'NR > 1 && $2 != 0 && $4 == 1 { if ($2 in n) n[$2] = n[$2] "," $1; else n[$2] = $1 }
                  END { for (h in n) print n[h] }' /proc/cgroups)
}
mount_cgroup_controllers

# Every kind node's systemd, kubelet, containerd and controller manager take inotify
# instances, all under root's limit of 128 by default; a three-control-plane cluster takes
# about 70, and the embedded clusters of a test run beside it take more. Past the limit a
# node's kubelet cannot start ("too many open files") and the node never registers. kind's
# documentation gives these values (known issues: "Pod errors due to too many open files").
raise_inotify_limits() {
    [[ $(id -u) -eq 0 ]] || return 0
    local key want have
    for key in max_user_instances:512 max_user_watches:524288; do
        want=${key#*:}
        key=fs.inotify.${key%%:*}
        have=$(sysctl -n "$key" 2>/dev/null) || continue
        if (( have < want )); then
            log "raising $key from $have to $want (kind's known issue: too many open files)"
            sysctl -qw "$key=$want" || log "could not raise $key; kind nodes may not start"
        fi
    done
}
raise_inotify_limits

if command -v docker >/dev/null && version=$(answers) && [[ -n "$version" ]]; then
    log "the Docker engine answers"
    echo "docker $version"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "no Docker engine answers and starting one needs root (sudo $0)"

if ! command -v dockerd >/dev/null; then
    log "installing docker.io from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
command -v dockerd >/dev/null || die "dockerd is still missing after installing docker.io"
command -v runc >/dev/null || die "runc is missing (apt-get install runc)"
command -v docker >/dev/null || die "the docker client is missing (apt-get install docker.io)"

args=(--host unix:///var/run/docker.sock)
# Capabilities the kernel lets this machine's processes hold: CapBnd of /proc/self/status.
bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if [[ -n "$bounding" ]] && (( 16#$bounding != 16#$(printf '%x' $(( (1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1 ))) )); then
    wrapper=/usr/local/libexec/cka-sim/runc-capfix
    log "this machine lacks some capabilities (CapBnd $bounding): installing $wrapper"
    mkdir -p "$(dirname "$wrapper")"
    install -m 0755 "$(dirname "$0")/runc-capfix" "$wrapper"
    args+=(--add-runtime "capfix=$wrapper" --default-runtime capfix)
fi

if pgrep -x dockerd >/dev/null; then
    log "dockerd runs but does not answer yet; waiting"
else
    log "starting dockerd ${args[*]}"
    nohup dockerd "${args[@]}" >>/var/log/cka-sim-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
    if version=$(answers) && [[ -n "$version" ]]; then
        echo "docker $version"
        exit 0
    fi
    sleep 1
done
tail -n 20 /var/log/cka-sim-dockerd.log >&2 || true
die "dockerd did not answer within 60 s (log above: /var/log/cka-sim-dockerd.log)"
