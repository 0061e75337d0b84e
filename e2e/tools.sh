#!/usr/bin/env bash
# Build the pinned e2e tools (helm, etcd, Kubernetes server binaries, kubeadm, kubectl, CoreDNS, and for the
# kind provider kind, crictl and a CoreDNS with kubeadm's Corefile plugins) from their Go modules
# through the Go module proxy with the ordinary `go` client. Idempotent: a binary whose version already
# matches the pin is not rebuilt. Binaries and Go caches live outside the repository (see
# /work/shared/spec/local-cluster.md §2), so CI runs and later runs reuse them.
#
# Usage: e2e/tools.sh            build what is missing, in the order helm, etcd, kube-*
#        e2e/tools.sh --check    exit 0 if every tool is present at its pinned version, 1 otherwise
set -euo pipefail

HELM_VERSION=v3.17.4
ETCD_VERSION=v3.5.21
KUBE_VERSION=v1.32.13 # staging modules are tagged v0.32.13
KUBE_MINOR=32
# The release whose k8s.io/client-go (v0.32.5) matches the cluster's minor; its go.mod has no replace lines.
COREDNS_VERSION=v1.12.3
# kind provider (e2e/kind): kind itself and crictl for the node image (cri-tools v1.31-v1.33 are not served
# by the proxy here; 1.34 speaks CRI v1 like kubelet 1.32).
KIND_VERSION=v0.27.0
CRICTL_VERSION=v1.34.0

CACHE=${DEPLOYER_CACHE:-/var/cache/deployer}
BIN=$CACHE/tools/bin
SRC=$CACHE/src
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS=-trimpath
# Two cores shared with other work: at most this many packages compile at once.
JOBS=${DEPLOYER_BUILD_JOBS:-2}
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl kubeadm)

log() { printf '[tools %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# The version string a built binary reports, or "" when it is absent or broken.
installed_version() {
  local exe=$BIN/$1
  [[ -x $exe ]] || return 0
  case $1 in
  helm) "$exe" version --template '{{.Version}}' 2>/dev/null || true ;;
  etcd) "$exe" --version 2>/dev/null | sed -n 's/^etcd Version: /v/p' || true ;;
  etcdctl) "$exe" version 2>/dev/null | sed -n 's/^etcdctl version: /v/p' || true ;;
  kubectl) "$exe" version --client 2>/dev/null | sed -n 's/^Client Version: //p' || true ;;
  coredns | coredns-kubeadm) "$exe" -version 2>/dev/null | sed -n 's/^CoreDNS-/v/p' || true ;;
  kubeadm) "$exe" version -o short 2>/dev/null || true ;;
  kind) "$exe" version 2>/dev/null | awk '{print $2}' || true ;;
  crictl) "$exe" --version 2>/dev/null | sed -n 's/^crictl version //p' || true ;;
  *) "$exe" --version 2>/dev/null | sed -n 's/^Kubernetes //p' || true ;;
  esac
}

wanted_version() {
  case $1 in
  helm) echo "$HELM_VERSION" ;;
  etcd | etcdctl) echo "$ETCD_VERSION" ;;
  coredns | coredns-kubeadm) echo "$COREDNS_VERSION" ;;
  kind) echo "$KIND_VERSION" ;;
  crictl) echo "$CRICTL_VERSION" ;;
  *) echo "$KUBE_VERSION" ;;
  esac
}

up_to_date() { [[ "$(installed_version "$1")" == "$(wanted_version "$1")" ]]; }

# Run a long command, printing a heartbeat every minute so CI logs show it is alive, and log its duration.
timed() {
  local what=$1
  shift
  local start=$SECONDS
  log "start: $what"
  (
    # The sleep is killed with the loop, so no orphan keeps a CI log pipe open.
    trap 'kill $s 2>/dev/null; exit 0' TERM
    while :; do
      sleep 60 &
      s=$!
      wait $s
      log "  ... $what still running ($((SECONDS - start))s)"
    done
  ) &
  local beat=$!
  local rc=0
  nice -n 10 "$@" || rc=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  if ((rc != 0)); then
    log "FAILED: $what (exit $rc after $((SECONDS - start))s)"
    exit "$rc"
  fi
  log "done: $what in $((SECONDS - start))s"
}

check_go() {
  command -v go >/dev/null || {
    echo "e2e/tools.sh: 'go' not found in PATH (need Go >= 1.23)" >&2
    exit 2
  }
  local v
  v=$(go env GOVERSION)
  local minor=${v#go1.}
  minor=${minor%%.*}
  if ((minor < 23)); then
    echo "e2e/tools.sh: $v is too old (need Go >= 1.23)" >&2
    exit 2
  fi
  log "using $v, GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE, -p $JOBS"
}

build_helm() {
  if up_to_date helm; then
    log "helm $HELM_VERSION present"
    return
  fi
  local pkg=helm.sh/helm/v3
  # Same -X flags as helm's Makefile, so `helm version` and `helm template` know the pinned versions.
  local ldf="-s -w -X $pkg/internal/version.version=$HELM_VERSION -X $pkg/internal/version.gitTreeState=clean"
  ldf+=" -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR"
  ldf+=" -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR"
  timed "helm $HELM_VERSION" env CGO_ENABLED=0 GOBIN="$BIN" go install -p "$JOBS" -ldflags "$ldf" "$pkg/cmd/helm@$HELM_VERSION"
  log "helm reports $(installed_version helm)"
}

# A wrapper module: etcd's own go.mod has replace lines, which `go install pkg@v` refuses.
build_etcd() {
  if up_to_date etcd && up_to_date etcdctl; then
    log "etcd $ETCD_VERSION present"
    return
  fi
  local dir=$SRC/etcdbins
  mkdir -p "$dir"
  cat >"$dir/go.mod.want" <<GOMOD
module etcdbins

go 1.23.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  if ! cmp -s "$dir/go.mod.want" "$dir/go.mod.base" 2>/dev/null; then
    cp "$dir/go.mod.want" "$dir/go.mod"
    cp "$dir/go.mod.want" "$dir/go.mod.base"
    rm -f "$dir/go.sum"
  fi
  (cd "$dir" && timed "etcd modules" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION")
  # The main package path ends in /v3, so -o must name a file.
  (cd "$dir" && timed "etcd $ETCD_VERSION" env CGO_ENABLED=0 go build -p "$JOBS" -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  (cd "$dir" && timed "etcdctl $ETCD_VERSION" env CGO_ENABLED=0 go build -p "$JOBS" -ldflags "-s -w" -o "$BIN/etcdctl" go.etcd.io/etcd/etcdctl/v3)
  log "etcd reports $(installed_version etcd)"
}

# A wrapper module that requires k8s.io/kubernetes and replaces each staging module (required by k/k at
# the non-existent v0.0.0) with its published tag. Replace lines of dependencies are ignored; ours win.
kube_gomod() {
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
    kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
    mount-utils pod-security-admission)
  printf 'module kubebins\n\ngo 1.23.0\n\n'
  # k/k 1.32 declares these runtime defaults; without the line Go >1.23 would apply its own.
  printf 'godebug default=go1.23\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
  local m
  for m in "${staging[@]}"; do
    local v=v0.${KUBE_VERSION#v1.}
    # The module proxy here refuses k8s.io/endpointslice@v0.32.13 (403 "not available"). Its tree is
    # identical to v0.32.12 except go.mod/go.sum (git diff v0.32.12 v0.32.13), so that tag builds the same code.
    [[ $m == endpointslice && $v == v0.32.13 ]] && v=v0.32.12
    printf '\tk8s.io/%s => k8s.io/%s %s\n' "$m" "$m" "$v"
  done
  printf ')\n'
}

build_kube() {
  local todo=() b
  for b in "${KUBE_BINS[@]}"; do
    if up_to_date "$b"; then log "$b $KUBE_VERSION present"; else todo+=("$b"); fi
  done
  ((${#todo[@]})) || return 0
  local dir=$SRC/kubebins
  mkdir -p "$dir"
  kube_gomod >"$dir/go.mod.want"
  if ! cmp -s "$dir/go.mod.want" "$dir/go.mod.base" 2>/dev/null; then
    cp "$dir/go.mod.want" "$dir/go.mod"
    cp "$dir/go.mod.want" "$dir/go.mod.base"
    rm -f "$dir/go.sum"
  fi
  local pkgs=()
  for b in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$KUBE_VERSION"); done
  (cd "$dir" && timed "kubernetes modules" go get "${pkgs[@]}")
  # Version flags as in hack/lib/version.sh; without them the binaries say v0.0.0-master, which breaks
  # helm kubeVersion constraints and version-skew checks.
  local ldf="-s -w" kv
  for kv in gitVersion=$KUBE_VERSION gitMajor=1 gitMinor=$KUBE_MINOR gitTreeState=clean \
    buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ); do
    ldf+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  # All static (CGO_ENABLED=0) so the five binaries share one set of compiled packages in GOCACHE.
  for b in "${todo[@]}"; do
    (cd "$dir" && timed "$b $KUBE_VERSION" env CGO_ENABLED=0 go build -p "$JOBS" -ldflags "$ldf" -o "$BIN/$b" "k8s.io/kubernetes/cmd/$b")
    log "$b reports $(installed_version "$b")"
  done
}

# CoreDNS through a wrapper module whose main package compiles in only the plugins the cluster's
# Corefile uses (CoreDNS's documented way to choose plugins at build time: set dnsserver.Directives and
# import the plugins). The stock main pulls in every plugin, including the AWS, Azure and Google SDKs.
# $1: the Corefile's directives in CoreDNS's plugin.cfg order (the order a query meets them);
# $2..: the matching plugin packages (the `prometheus` directive is the `metrics` package).
coredns_main() {
  local directives=$1 p
  shift
  printf '// Generated by e2e/tools.sh: CoreDNS with only the plugins of one Corefile.\npackage main\n\n'
  printf 'import (\n\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n\n'
  for p in "$@"; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
  printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{'
  local first=1 d
  for d in $directives; do
    ((first)) || printf ', '
    first=0
    printf '"%s"' "$d"
  done
  printf '}\n}\n\nfunc main() { coremain.Run() }\n'
}

# coredns: the local cluster's Corefile (e2e/localcluster/dns.py); coredns-kubeadm: the Corefile kubeadm
# writes for the kind node (adds prometheus, forward, loop, reload, loadbalance).
build_coredns() { # binary-name module-dir directives plugin-packages...
  local name=$1 dir=$SRC/$2 directives=$3
  shift 3
  if up_to_date "$name"; then
    log "$name $COREDNS_VERSION present"
    return
  fi
  mkdir -p "$dir"
  printf 'module %s\n\ngo 1.23.0\n\nrequire github.com/coredns/coredns %s\n' "${dir##*/}" "$COREDNS_VERSION" >"$dir/go.mod.want"
  coredns_main "$directives" "$@" >"$dir/main.go"
  if ! cmp -s "$dir/go.mod.want" "$dir/go.mod.base" 2>/dev/null; then
    cp "$dir/go.mod.want" "$dir/go.mod"
    cp "$dir/go.mod.want" "$dir/go.mod.base"
    rm -f "$dir/go.sum"
  fi
  (cd "$dir" && timed "coredns modules" go mod tidy)
  local ldf="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION-e2e-plugins"
  (cd "$dir" && timed "$name $COREDNS_VERSION" env CGO_ENABLED=0 go build -p "$JOBS" -ldflags "$ldf" -o "$BIN/$name" .)
  log "$name reports $(installed_version "$name")"
}

build_kind() {
  if up_to_date kind; then
    log "kind $KIND_VERSION present"
  else
    # kind's go.mod has no replace lines, so a plain `go install` works.
    timed "kind $KIND_VERSION" env CGO_ENABLED=0 GOBIN="$BIN" go install -p "$JOBS" -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
    log "kind reports $(installed_version kind)"
  fi
  if up_to_date crictl; then
    log "crictl $CRICTL_VERSION present"
  else
    timed "crictl $CRICTL_VERSION" env CGO_ENABLED=0 GOBIN="$BIN" go install -p "$JOBS" \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
    log "crictl reports $(installed_version crictl)"
  fi
}

check_all() {
  local ok=0 b
  for b in helm etcd etcdctl "${KUBE_BINS[@]}" coredns coredns-kubeadm kind crictl; do
    if up_to_date "$b"; then
      echo "ok      $b $(wanted_version "$b")"
    else
      echo "MISSING $b (want $(wanted_version "$b"), have '$(installed_version "$b")')"
      ok=1
    fi
  done
  return $ok
}

main() {
  mkdir -p "$BIN" "$SRC" "$GOMODCACHE" "$GOCACHE"
  if [[ ${1:-} == --check ]]; then
    check_all
    return
  fi
  # One builder at a time (make cluster and a background build may overlap); the second waits.
  exec 9>"$CACHE/tools/.lock"
  if ! flock -n 9; then
    log "another e2e/tools.sh is building; waiting for it"
    flock 9
  fi
  local start=$SECONDS
  check_go
  build_helm
  build_etcd
  build_kube
  build_coredns coredns corednsbins "ready health errors cache kubernetes" cache errors health kubernetes ready
  build_coredns coredns-kubeadm corednskubeadm \
    "reload ready health prometheus errors loadbalance cache kubernetes loop forward" \
    reload ready health metrics errors loadbalance cache kubernetes loop forward
  build_kind
  check_all
  log "all tools ready in $BIN (${SECONDS}s total this run)"
}

main "$@"
