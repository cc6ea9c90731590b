#!/usr/bin/env bash
# Build the kind node image cka-sim's kind lane uses, without any container registry: every
# binary from the Go module proxy (.ci/build-binaries.sh --kind), the root filesystem from
# Debian's packages. A built image is saved (docker save | gzip) in the user cache, keyed by
# the pinned versions and a hash of the build files, and loaded from there next time.
# Prints the image reference as its last line.
#
# What `kind create cluster --image IMAGE` then finds in the image, as in kind's own
# (sigs.k8s.io/kind images/base and pkg/build/nodeimage):
#   - kind's entrypoint, systemd units and scripts, from the kind module at the pinned version;
#   - containerd and runc from Debian, kubelet/kubeadm/kubectl in /usr/bin, crictl in
#     /usr/local/bin (the kind driver adds etcdctl and etcdutl to control planes, as an
#     exam cluster has them there and not on workers);
#   - the images kubeadm v1.35 runs (`kubeadm config images list`), built locally and
#     pre-imported into containerd's k8s.io namespace: kube-apiserver,
#     kube-controller-manager, kube-scheduler, kube-proxy, etcd (with etcdctl and etcdutl),
#     coredns and pause; and busybox:stable, the built-in tasks' workload image, made from
#     the machine's static BusyBox as the embedded driver's image store makes it;
#   - /kind/manifests/default-cni.yaml: cka-sim's pod network (podroutes), and a default
#     StorageClass.
# Beside it, for clusters with several control planes, the load balancer image kind runs
# (envoyproxy/envoy at the tag kind pins) unless the engine has it: HAProxy from Debian
# behind a script that reads kind's envoy config files (node/envoy-shim.sh).
#
# Usage: .ci/kind/node-image.sh          (needs a Docker engine: .ci/kind/engine.sh)
#   CKA_SIM_CACHE / XDG_CACHE_HOME choose the cache directory, as for build-binaries.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
started=$(date +%s)
log() { printf '[node-image %3ss] %s\n' "$(( $(date +%s) - started ))" "$*" >&2; }
die() { printf 'node-image.sh: %s\n' "$*" >&2; exit 1; }

eval "$(bash "$ROOT/.ci/build-binaries.sh" --print-versions)"
ETCD_TAG="${ETCD_VERSION#v}-0"
SUITE=bookworm
MIRROR=${CKA_SIM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

CACHE_DIR="${CKA_SIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cka-sim}"
BIN_ROOT="$CACHE_DIR/bin"
KUBE_DIR="$BIN_ROOT/kubernetes-$KUBE_VERSION"
ETCD_DIR="$BIN_ROOT/etcd-$ETCD_VERSION"

# The cache key: the versions and every file that shapes the image.
hash=$(cat "$HERE/node-image.sh" "$HERE"/node/* "$ROOT/simulator/versions.toml" \
    "$ROOT/simulator/cluster/local/images.py" \
    "$ROOT/.ci/build-binaries.sh" | sha256sum | cut -c1-12)
IMAGE="cka-sim/node:$KUBE_VERSION-$hash"
PODROUTES_IMAGE="cka-sim.local/podroutes:$hash"
CACHED="$CACHE_DIR/kind-image/node-$KUBE_VERSION-kind-$KIND_VERSION-etcd-$ETCD_VERSION-coredns-$COREDNS_VERSION-$hash.tar.gz"

command -v docker >/dev/null || die "docker is missing; run .ci/kind/engine.sh first"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "the Docker engine does not answer; run .ci/kind/engine.sh first"

kind_src=$(cd /tmp && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[[ -d "$kind_src/images/base/files" ]] || die "sigs.k8s.io/kind@$KIND_VERSION has no images/base/files"
LB_IMAGE=$(sed -n 's/^const Image = "\(.*\)"/\1/p' "$kind_src/pkg/cluster/internal/loadbalancer/const.go")
[[ -n "$LB_IMAGE" ]] || die "no load balancer image found in sigs.k8s.io/kind@$KIND_VERSION"

if docker image inspect "$IMAGE" >/dev/null 2>&1 && docker image inspect "$LB_IMAGE" >/dev/null 2>&1; then
    log "$IMAGE is already in the engine"
    echo "$IMAGE"
    exit 0
fi
if [[ -f "$CACHED" ]]; then
    log "loading $IMAGE from $CACHED"
    gzip -dc "$CACHED" | docker load >/dev/null
    docker image inspect "$IMAGE" >/dev/null 2>&1 && docker image inspect "$LB_IMAGE" >/dev/null 2>&1 ||
        die "$CACHED did not hold $IMAGE and $LB_IMAGE; remove it"
    log "loaded"
    echo "$IMAGE"
    exit 0
fi

log "building $IMAGE (no cache at $CACHED)"
bash "$ROOT/.ci/build-binaries.sh" --kind >&2
KIND_BIN="$BIN_ROOT/kind-$KIND_VERSION/kind"
CRICTL_BIN="$BIN_ROOT/cri-tools-$CRI_TOOLS_VERSION/crictl"
COREDNS_BIN="$BIN_ROOT/coredns-$COREDNS_VERSION/coredns"

if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
fi
command -v gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cka-sim-node-image.XXXXXX")
containers=()
cleanup() {
    [[ ${#containers[@]} -eq 0 ]] || docker rm -f "${containers[@]}" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT


# -- root filesystems -----------------------------------------------------------------
NODE_PACKAGES=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins,socat,ebtables,less,vim-tiny,iputils-ping,cron,openssh-client,openssh-server,sudo
log "root filesystem of the node (mmdebstrap $SUITE)"
mmdebstrap --quiet --variant=minbase --include="$NODE_PACKAGES" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/locale/* "$1"/usr/share/info/*' \
    "$SUITE" "$WORK/node-rootfs.tar" "$MIRROR" >&2
docker import "$WORK/node-rootfs.tar" "cka-sim/build-node-rootfs:$hash" >/dev/null
rm -f "$WORK/node-rootfs.tar"

# Kept small: a pod's image is unpacked when the pod first starts on a new node, so every
# megabyte here delays kube-proxy and the pod network (perl, docs and locales are unused).
log "root filesystem of kube-proxy, podroutes and the load balancer"
mmdebstrap --quiet --variant=minbase --include=iptables,nftables,conntrack,ipset,iproute2,kmod,haproxy \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    --customize-hook='rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale "$1"/usr/share/info "$1"/usr/share/perl "$1"/usr/share/perl5 "$1"/usr/lib/x86_64-linux-gnu/perl "$1"/usr/lib/x86_64-linux-gnu/perl-base "$1"/usr/lib/x86_64-linux-gnu/gconv "$1"/usr/share/zoneinfo "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
    "$SUITE" "$WORK/net-rootfs.tar" "$MIRROR" >&2
docker import "$WORK/net-rootfs.tar" "cka-sim/build-net-rootfs:$hash" >/dev/null
rm -f "$WORK/net-rootfs.tar"

# A minimal base for static binaries, as distroless: passwd, group, /tmp.
mkdir -p "$WORK/static/etc" "$WORK/static/tmp" "$WORK/static/usr/local/bin" "$WORK/static/etc/ssl/certs"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$WORK/static/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$WORK/static/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$WORK/static/etc/ssl/certs/" 2>/dev/null || true
chmod 1777 "$WORK/static/tmp"
tar -C "$WORK/static" -cf "$WORK/static.tar" .
docker import "$WORK/static.tar" "cka-sim/build-static:$hash" >/dev/null

# -- component images --------------------------------------------------------------
image() {  # TAG BASE ENTRYPOINT-JSON FILE...  (files land in /usr/local/bin, mode from source)
    local tag=$1 base=$2 entry=$3; shift 3
    local ctx="$WORK/ctx-${tag//[\/:]/_}"
    mkdir -p "$ctx/bin"
    cp -p "$@" "$ctx/bin/"
    printf 'FROM %s\nCOPY bin/ /usr/local/bin/\nENTRYPOINT %s\n' "$base" "$entry" >"$ctx/Dockerfile"
    docker build -q -t "$tag" "$ctx" >/dev/null
    log "image $tag"
}
static="cka-sim/build-static:$hash"
net="cka-sim/build-net-rootfs:$hash"
for name in kube-apiserver kube-controller-manager kube-scheduler; do
    image "registry.k8s.io/$name:$KUBE_VERSION" "$static" "[\"/usr/local/bin/$name\"]" "$KUBE_DIR/$name"
done
image "registry.k8s.io/etcd:$ETCD_TAG" "$static" '["/usr/local/bin/etcd"]' \
    "$ETCD_DIR/etcd" "$ETCD_DIR/etcdctl" "$ETCD_DIR/etcdutl"
image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$static" '["/usr/local/bin/coredns"]' "$COREDNS_BIN"
image "registry.k8s.io/kube-proxy:$KUBE_VERSION" "$net" '["/usr/local/bin/kube-proxy"]' "$KUBE_DIR/kube-proxy"
cp "$HERE/node/podroutes.sh" "$WORK/podroutes" && chmod 0755 "$WORK/podroutes"
image "$PODROUTES_IMAGE" "$net" '["/usr/local/bin/podroutes"]' "$KUBE_DIR/kubectl" "$WORK/podroutes"

# the load balancer of several control planes, unless the engine has kind's own
if ! docker image inspect "$LB_IMAGE" >/dev/null 2>&1; then
    cp "$HERE/node/envoy-shim.sh" "$WORK/envoy" && chmod 0755 "$WORK/envoy"
    image "$LB_IMAGE" "$net" '["/usr/local/bin/envoy"]' "$WORK/envoy"
fi

# pause, from the kubernetes module's build/pause/linux/pause.c
kube_src=$(cd "$WORK" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
mkdir -p "$WORK/ctx-pause"
gcc -Os -static -DVERSION="v$PAUSE_VERSION" -o "$WORK/ctx-pause/pause" "$kube_src/build/pause/linux/pause.c"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$WORK/ctx-pause/Dockerfile"
docker build -q -t "registry.k8s.io/pause:$PAUSE_VERSION" "$WORK/ctx-pause" >/dev/null
log "image registry.k8s.io/pause:$PAUSE_VERSION"

# busybox:stable, the image of the built-in tasks' workloads, made from the machine's static
# BusyBox exactly as the embedded driver's image store makes it (Debian's busybox-static)
PYTHONPATH="$ROOT" python3 -c '
import sys
from pathlib import Path
from simulator.cluster.local import images
store = images.Store(Path(sys.argv[1]))
missing = images.prepare_builtin(store)
if missing:
    sys.exit("; ".join(missing))
print(store.get("busybox:stable").rootfs)' "$WORK/image-store" >"$WORK/busybox-root" ||
    die "no busybox image: install Debian's busybox-static"
mkdir -p "$WORK/ctx-busybox"
cp -a "$(cat "$WORK/busybox-root")" "$WORK/ctx-busybox/rootfs"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n' >"$WORK/ctx-busybox/Dockerfile"
docker build -q -t "docker.io/library/busybox:stable" "$WORK/ctx-busybox" >/dev/null
log "image docker.io/library/busybox:stable"

# Every image kubeadm asks for must be among them.
images=("registry.k8s.io/kube-apiserver:$KUBE_VERSION" "registry.k8s.io/kube-controller-manager:$KUBE_VERSION"
        "registry.k8s.io/kube-scheduler:$KUBE_VERSION" "registry.k8s.io/kube-proxy:$KUBE_VERSION"
        "registry.k8s.io/etcd:$ETCD_TAG" "registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
        "registry.k8s.io/pause:$PAUSE_VERSION" "$PODROUTES_IMAGE")
while read -r wanted; do
    printf '%s\n' "${images[@]}" | grep -qxF "$wanted" ||
        die "kubeadm $KUBE_VERSION wants $wanted, which this script does not build"
done < <("$KUBE_DIR/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)

# -- the node --------------------------------------------------------------------------
ctx="$WORK/ctx-node"
mkdir -p "$ctx"
cp -a "$kind_src/images/base/files/." "$ctx/files/"
chmod -R u+w "$ctx/files"
# modes as kind's Dockerfile sets them (COPY --chmod), set here: Docker 20.10's builder
# has no --chmod and a RUN chmod layer would copy every file again
find "$ctx/files" -type d -exec chmod 0755 {} +
find "$ctx/files" -type f -exec chmod 0644 {} +
chmod 0755 "$ctx/files/usr/local/bin/"* "$ctx/files/kind/bin/"*
rm -f "$ctx/files/etc/systemd/system/containerd-fuse-overlayfs.service"
sed "s/@PAUSE@/$PAUSE_VERSION/" "$HERE/node/containerd-config.toml" >"$ctx/files/etc/containerd/config.toml"
# Debian's containerd lives in /usr/bin
sed -i 's#^ExecStart=/usr/local/bin/containerd#ExecStart=/usr/bin/containerd#' "$ctx/files/etc/systemd/system/containerd.service"
# kubelet 1.35 refuses cgroup v1 hosts unless told otherwise
echo 'KUBELET_EXTRA_ARGS=--runtime-cgroups=/system.slice/containerd.service --fail-cgroupv1=false' \
    >"$ctx/files/etc/default/kubelet"
mkdir -p "$ctx/files/kind/manifests"
sed "s#@PODROUTES_IMAGE@#$PODROUTES_IMAGE#" "$HERE/node/default-cni.yaml" >"$ctx/files/kind/manifests/default-cni.yaml"
cp "$HERE/node/default-storage.yaml" "$ctx/files/kind/manifests/default-storage.yaml"
printf '%s' "$KUBE_VERSION" >"$ctx/files/kind/version"
mkdir -p "$ctx/usr-bin" "$ctx/local-bin"
cp "$KUBE_DIR/kubelet" "$KUBE_DIR/kubeadm" "$KUBE_DIR/kubectl" "$ctx/usr-bin/"
cp "$CRICTL_BIN" "$ctx/local-bin/"
chmod 0755 "$ctx/usr-bin/"* "$ctx/local-bin/"*
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM cka-sim/build-node-rootfs:$hash
COPY files/ /
COPY usr-bin/ /usr/bin/
COPY local-bin/ /usr/local/bin/
RUN ctr oci spec \\
        | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
        | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \\
    && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
        /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
        /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service cron.service \\
    && systemctl mask systemd-binfmt.service \\
    && mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /opt/cni \\
    && ln -sfn /usr/lib/cni /opt/cni/bin
DOCKERFILE
log "node base image"
docker build -q -t "cka-sim/build-node-base:$hash" "$ctx" >/dev/null

images+=("docker.io/library/busybox:stable")
log "pre-importing ${#images[@]} images into the node's containerd"
docker save "${images[@]}" -o "$WORK/images.tar"
cid=$(docker run -d --privileged --entrypoint=sleep "cka-sim/build-node-base:$hash" infinity)
containers+=("$cid")
docker cp "$WORK/images.tar" "$cid:/images.tar"
docker exec "$cid" bash -c '
    set -e
    containerd >/tmp/containerd.log 2>&1 &
    for i in $(seq 1 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
    ctr -n k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests /images.tar >/dev/null
    ctr -n k8s.io images list -q | grep -v -e "^sha256:" -e "^import-" | sort
    kill %1; wait || true
    rm -f /images.tar /tmp/containerd.log' >&2
docker commit "$cid" "cka-sim/build-node-imported:$hash" >/dev/null
docker rm -f "$cid" >/dev/null
containers=()
# `docker commit --change` cannot set STOPSIGNAL; a metadata-only build can
mkdir -p "$WORK/ctx-final"
cat >"$WORK/ctx-final/Dockerfile" <<DOCKERFILE
FROM cka-sim/build-node-imported:$hash
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
CMD []
DOCKERFILE
docker build -q -t "$IMAGE" "$WORK/ctx-final" >/dev/null
docker rmi "cka-sim/build-node-imported:$hash" "cka-sim/build-node-base:$hash" >/dev/null 2>&1 || true

log "saving $IMAGE to $CACHED"
mkdir -p "$(dirname "$CACHED")"
rm -f "$(dirname "$CACHED")"/node-*.tar.gz.tmp
docker save "$IMAGE" "$LB_IMAGE" | gzip -1 >"$CACHED.tmp"
mv "$CACHED.tmp" "$CACHED"
# older images of this cache, and in the engine, are stale now
find "$(dirname "$CACHED")" -name 'node-*.tar.gz' ! -path "$CACHED" -delete
docker images --format '{{.Repository}}:{{.Tag}}' |
    grep -E '^(cka-sim/node:|cka-sim\.local/podroutes:|cka-sim/build-)' |
    grep -v -e "^$IMAGE\$" -e ":$hash\$" | xargs -r docker rmi >/dev/null 2>&1 || true
docker rmi "cka-sim/build-static:$hash" "cka-sim/build-node-rootfs:$hash" "cka-sim/build-net-rootfs:$hash" >/dev/null 2>&1 || true
log "done"
echo "$IMAGE"
