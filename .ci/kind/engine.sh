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
#     it answers.
#
# Usage: .ci/kind/engine.sh            (as root)
set -euo pipefail

log() { printf '[engine] %s\n' "$*" >&2; }
die() { printf 'engine.sh: %s\n' "$*" >&2; exit 1; }

answers() { timeout 20 docker version --format '{{.Server.Version}}' 2>/dev/null; }

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
