#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries and etcd the simulator runs, from the Go
# module proxy (no git clones), into the user cache that simulator.cluster.binaries
# searches:
#
#   $CACHE_DIR/bin/kubernetes-<KUBE_VERSION>/{kube-apiserver,kube-controller-manager,
#                                             kube-scheduler,kubectl,kubeadm,kube-proxy}
#   $CACHE_DIR/bin/etcd-<ETCD_VERSION>/{etcd,etcdctl,etcdutl}
#   $CACHE_DIR/bin/coredns-<COREDNS_VERSION>/coredns    (the kubeadm add-ons' images)
#
# With --kind it also builds what a kind node image needs (.ci/kind/node-image.sh):
#
#   $CACHE_DIR/bin/kubernetes-<KUBE_VERSION>/kubelet
#   $CACHE_DIR/bin/kind-<KIND_VERSION>/kind
#   $CACHE_DIR/bin/cri-tools-<CRI_TOOLS_VERSION>/crictl
#
# Usage: .ci/build-binaries.sh [--kind] [CACHE_DIR]
#        .ci/build-binaries.sh --print-versions
#   CACHE_DIR defaults to ${CKA_SIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cka-sim}.
#   The versions come from simulator/versions.toml (the simulator reads the same file);
#   KUBE_VERSION / ETCD_VERSION may be overridden from the environment. --print-versions
#   prints the versions a build would use and exits.
#
# A binary that already reports the expected version is not rebuilt, so a warm run takes
# seconds. Builds go to a temporary directory and are renamed into place, so an interrupted
# build never leaves a partial binary. Builds run one at a time under `nice` because the
# machine is shared. Measured on 2 shared cores with Go 1.26 and empty Go caches: about
# 5 minutes cold (kube-apiserver alone about 3), under a second warm.
set -euo pipefail

started=$(date +%s)
log() { printf '[build-binaries %3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
die() { printf 'build-binaries: %s\n' "$*" >&2; exit 1; }

VERSIONS_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/simulator/versions.toml"
# The value of a flat `NAME = "VALUE"` line of versions.toml.
pinned() {
    local value
    value=$(sed -n "s/^$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$VERSIONS_FILE" 2>/dev/null)
    [[ -n "$value" ]] || die "no '$1 = \"...\"' line in $VERSIONS_FILE"
    printf '%s\n' "$value"
}
KUBE_VERSION="${KUBE_VERSION:-$(pinned kubernetes)}"
ETCD_VERSION="${ETCD_VERSION:-$(pinned etcd)}"
KIND_VERSION="${KIND_VERSION:-$(pinned kind)}"
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-$(pinned cri_tools)}"
COREDNS_VERSION="${COREDNS_VERSION:-$(pinned coredns)}"
PAUSE_VERSION="${PAUSE_VERSION:-$(pinned pause)}"
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubeadm kube-proxy)
ETCD_BINARIES=(etcd etcdctl etcdutl)

if [[ "${1:-}" == "--print-versions" ]]; then
    printf 'KUBE_VERSION=%s\nETCD_VERSION=%s\nKIND_VERSION=%s\nCRI_TOOLS_VERSION=%s\nCOREDNS_VERSION=%s\nPAUSE_VERSION=%s\n' \
        "$KUBE_VERSION" "$ETCD_VERSION" "$KIND_VERSION" "$CRI_TOOLS_VERSION" "$COREDNS_VERSION" "$PAUSE_VERSION"
    exit 0
fi
WITH_KIND=0
if [[ "${1:-}" == "--kind" ]]; then
    WITH_KIND=1
    KUBE_BINARIES+=(kubelet)
    shift
fi

CACHE_DIR="${1:-${CKA_SIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cka-sim}}"
BIN_ROOT="$CACHE_DIR/bin"
KUBE_DIR="$BIN_ROOT/kubernetes-$KUBE_VERSION"
ETCD_DIR="$BIN_ROOT/etcd-$ETCD_VERSION"
WORK_ROOT="$CACHE_DIR/build"

TMP_DIRS=()
cleanup() { [[ ${#TMP_DIRS[@]} -eq 0 ]] || rm -rf "${TMP_DIRS[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v go >/dev/null || die "go is not on PATH; install Go >= 1.25 (https://go.dev/dl/)"

# What a binary prints about its version.
version_output() {
    local path=$1 name=$2
    case "$name" in
        kubectl) timeout 30 "$path" version --client ;;
        kubeadm) timeout 30 "$path" version -o short ;;
        etcdctl | etcdutl | kind) timeout 30 "$path" version ;;
        crictl) timeout 30 "$path" --version ;;
        coredns) timeout 30 "$path" -version ;;
        *) timeout 30 "$path" --version ;;
    esac 2>/dev/null
}

# The line that output must contain.
expected_line() {
    case "$1" in
        etcd) echo "etcd Version: ${ETCD_VERSION#v}" ;;
        etcdctl) echo "etcdctl version: ${ETCD_VERSION#v}" ;;
        etcdutl) echo "etcdutl version: ${ETCD_VERSION#v}" ;;
        kubectl) echo "Client Version: $KUBE_VERSION" ;;
        kubeadm) echo "$KUBE_VERSION" ;;
        kind) echo "kind $KIND_VERSION $(go env GOVERSION) linux/$(go env GOARCH)" ;;
        crictl) echo "crictl version $CRI_TOOLS_VERSION" ;;
        coredns) echo "CoreDNS-${COREDNS_VERSION#v}" ;;
        *) echo "Kubernetes $KUBE_VERSION" ;;
    esac
}

is_current() {
    local path=$1 name=$2
    local out
    [[ -x "$path" ]] || return 1
    out=$(version_output "$path" "$name") || true
    grep -qxF -- "$(expected_line "$name")" <<<"$out"
}

# go build of one main package into DEST_DIR/NAME through a temp file in the same directory.
build_one() {
    local module_dir=$1 pkg=$2 dest_dir=$3 name=$4 ldflags=$5
    local tmp
    tmp=$(mktemp -d "$dest_dir/.build-$name.XXXXXX")
    TMP_DIRS+=("$tmp")
    local t0
    t0=$(date +%s)
    log "building $name ($pkg)"
    (
        cd "$module_dir"
        CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false" \
            nice -n 19 go build -p 2 -trimpath -ldflags "$ldflags" -o "$tmp/$name" "$pkg"
    )
    is_current "$tmp/$name" "$name" ||
        die "$name was built but does not report '$(expected_line "$name")'"
    mv -f "$tmp/$name" "$dest_dir/$name"
    rm -rf "$tmp"
    log "built $name in $(( $(date +%s) - t0 ))s -> $dest_dir/$name"
}

# The release time the module proxy records, used as a reproducible build date.
module_time() {
    go mod download -json "$1" | sed -n 's/.*"Info": "\(.*\)".*/\1/p' |
        xargs cat | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p'
}

missing_of() {
    local dir=$1; shift
    local name
    for name in "$@"; do
        is_current "$dir/$name" "$name" || echo "$name"
    done
}

write_kube_wrapper() {
    local dir=$1 info gomod minor staging
    info=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")
    gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$info")
    [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION from ${GOPROXY:-the Go proxy}"
    minor=${KUBE_VERSION#v1.}
    staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$gomod")
    [[ -n "$staging" ]] || die "no staging modules found in $gomod"
    {
        echo "module cka-sim.invalid/kubernetes-build"
        echo
        sed -n 's/^go \(.*\)/go \1/p' "$gomod"
        echo
        echo "require k8s.io/kubernetes $KUBE_VERSION"
        echo
        echo "replace ("
        local mod
        for mod in $staging; do
            echo "	$mod => $mod v0.$minor"
        done
        echo ")"
    } >"$dir/go.mod.new"
    if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.template" 2>/dev/null; then
        cp "$dir/go.mod.new" "$dir/go.mod.template"
        cp "$dir/go.mod.new" "$dir/go.mod"
        rm -f "$dir/go.sum"
    fi
    rm -f "$dir/go.mod.new"
}

write_etcd_wrapper() {
    local dir=$1
    cat >"$dir/go.mod.new" <<EOF
module cka-sim.invalid/etcd-build

go 1.24

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdutl/v3 $ETCD_VERSION
)
EOF
    if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.template" 2>/dev/null; then
        cp "$dir/go.mod.new" "$dir/go.mod.template"
        cp "$dir/go.mod.new" "$dir/go.mod"
        rm -f "$dir/go.sum"
    fi
    rm -f "$dir/go.mod.new"
}

build_kubernetes() {
    local missing
    mapfile -t missing < <(missing_of "$KUBE_DIR" "${KUBE_BINARIES[@]}")
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "kubernetes $KUBE_VERSION: all binaries present in $KUBE_DIR"
        return
    fi
    log "kubernetes $KUBE_VERSION: to build: ${missing[*]}"
    local work="$WORK_ROOT/kubernetes-$KUBE_VERSION"
    mkdir -p "$work" "$KUBE_DIR"
    write_kube_wrapper "$work"
    local major minor build_date ldflags="-s -w" key val
    major=${KUBE_VERSION#v}; major=${major%%.*}
    minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
    build_date=$(module_time "k8s.io/kubernetes@$KUBE_VERSION")
    # The same variables hack/lib/version.sh (kube::version::ldflags) stamps.
    for pair in "gitVersion=$KUBE_VERSION" "gitMajor=$major" "gitMinor=$minor" \
        "buildDate=$build_date"; do
        key=${pair%%=*}; val=${pair#*=}
        ldflags+=" -X k8s.io/client-go/pkg/version.$key=$val"
        ldflags+=" -X k8s.io/component-base/version.$key=$val"
    done
    local name
    for name in "${missing[@]}"; do
        build_one "$work" "k8s.io/kubernetes/cmd/$name" "$KUBE_DIR" "$name" "$ldflags"
    done
}

build_etcd() {
    local missing
    mapfile -t missing < <(missing_of "$ETCD_DIR" "${ETCD_BINARIES[@]}")
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "etcd $ETCD_VERSION: all binaries present in $ETCD_DIR"
        return
    fi
    log "etcd $ETCD_VERSION: to build: ${missing[*]}"
    local work="$WORK_ROOT/etcd-$ETCD_VERSION"
    mkdir -p "$work" "$ETCD_DIR"
    write_etcd_wrapper "$work"
    local name pkg
    for name in "${missing[@]}"; do
        case "$name" in
            etcd) pkg=go.etcd.io/etcd/server/v3 ;;
            etcdctl) pkg=go.etcd.io/etcd/etcdctl/v3 ;;
            etcdutl) pkg=go.etcd.io/etcd/etcdutl/v3 ;;
        esac
        build_one "$work" "$pkg" "$ETCD_DIR" "$name" "-s -w"
    done
}

# One Go program of another module (kind, crictl, CoreDNS) into $BIN_ROOT/<dir>/<name>.
build_tool() {
    local name=$1 module=$2 version=$3 pkg=$4 dir=$5 ldflags=$6
    if is_current "$dir/$name" "$name"; then
        log "$name $version: present in $dir"
        return
    fi
    local work="$WORK_ROOT/$name-$version"
    mkdir -p "$work" "$dir"
    printf 'module cka-sim.invalid/%s-build\n\ngo 1.24\n\nrequire %s %s\n' \
        "$name" "$module" "$version" >"$work/go.mod.new"
    if ! cmp -s "$work/go.mod.new" "$work/go.mod.template" 2>/dev/null; then
        cp "$work/go.mod.new" "$work/go.mod.template"
        cp "$work/go.mod.new" "$work/go.mod"
        rm -f "$work/go.sum"
    fi
    rm -f "$work/go.mod.new"
    (cd "$work" && go mod download "$module@$version" && GOFLAGS=-mod=mod go get "$pkg@$version" >/dev/null 2>&1 || true)
    build_one "$work" "$pkg" "$dir" "$name" "$ldflags"
}

build_kind_tools() {
    build_tool kind sigs.k8s.io/kind "$KIND_VERSION" sigs.k8s.io/kind "$BIN_ROOT/kind-$KIND_VERSION" "-s -w"
    build_tool crictl sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
        "$BIN_ROOT/cri-tools-$CRI_TOOLS_VERSION" \
        "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
}

mkdir -p "$BIN_ROOT"
exec 9>"$BIN_ROOT/.build.lock"
if ! flock -n 9; then
    log "another build holds $BIN_ROOT/.build.lock; waiting"
    flock 9
fi

# Leftovers of an interrupted build; only a lock holder builds, so none is in use.
rm -rf "$KUBE_DIR"/.build-* "$ETCD_DIR"/.build-*

log "cache: $CACHE_DIR ($(go version))"
build_etcd
build_kubernetes
build_tool coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns \
    "$BIN_ROOT/coredns-$COREDNS_VERSION" "-s -w"
[[ $WITH_KIND -eq 0 ]] || build_kind_tools
log "done in $(( $(date +%s) - started ))s"
for name in "${ETCD_BINARIES[@]}"; do echo "  $ETCD_DIR/$name"; done
for name in "${KUBE_BINARIES[@]}"; do echo "  $KUBE_DIR/$name"; done
echo "  $BIN_ROOT/coredns-$COREDNS_VERSION/coredns"
if [[ $WITH_KIND -eq 1 ]]; then
    echo "  $BIN_ROOT/kind-$KIND_VERSION/kind"
    echo "  $BIN_ROOT/cri-tools-$CRI_TOOLS_VERSION/crictl"
fi
