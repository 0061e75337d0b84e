#!/usr/bin/env bash
# Build the peers that bench/rollout.py compares against, pinned, from their Go modules through the Go module
# proxy with the ordinary `go` client: helm v4 (kstatus watcher, --rollback-on-failure) and kubedog's CLI
# (werf's rollout tracker). Only the benchmark uses them, so neither `make test` nor the set-up runs this.
# Idempotent: a binary that already reports its pinned version is not rebuilt. Binaries go to
# /var/cache/deployer/tools/peers (outside the repository), next to the Go caches e2e/tools.sh uses.
#
# Usage: bench/peers.sh            build what is missing
#        bench/peers.sh --check    exit 0 if both peers are present at their pinned versions, 1 otherwise
set -euo pipefail

# The newest v4 tag the proxy served when this was pinned.
HELM4_VERSION=v4.3.2
# kubedog's newest tag on the proxy (its main branch is pseudo-versions past it). Its go.mod has no replace
# lines, so `go install pkg@version` works without a wrapper module. Not main: at ed58edf (2026-02-17,
# v0.13.1-0.20260217150136-ed58edf34eac) the deployment tracker reads its informers from a factory that the
# library's own deployment feed passes as nil (feed.go:53), so the CLI's `rollout track deployment` and
# `multitrack` panic in deployment.(*Tracker).runDeploymentInformer (tracker.go:415) on any Deployment.
# v0.13.0's tracker watches with its own client and tracks a Deployment to ready or to its first pod error.
KUBEDOG_VERSION=v0.13.0

CACHE=${DEPLOYER_CACHE:-/var/cache/deployer}
PEERS=$CACHE/tools/peers
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local GOFLAGS=-trimpath CGO_ENABLED=0
# Two cores shared with other work: at most this many packages compile at once.
JOBS=${DEPLOYER_BUILD_JOBS:-2}

log() { printf '[peers %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

installed_version() {
  local exe=$PEERS/$1
  [[ -x $exe ]] || return 0
  case $1 in
  helm4) "$exe" version --template '{{.Version}}' 2>/dev/null || true ;;
  kubedog) "$exe" version 2>/dev/null || true ;;
  esac
}

wanted_version() {
  case $1 in
  helm4) echo "$HELM4_VERSION" ;;
  kubedog) echo "$KUBEDOG_VERSION" ;;
  esac
}

up_to_date() { [[ "$(installed_version "$1")" == "$(wanted_version "$1")" ]]; }

# `go install` names the binary after its package; both would be `helm`-like names in one folder, so each
# installs into a scratch GOBIN and is moved to its own name.
install_as() {
  local name=$1 pkg=$2 ldflags=$3
  local gobin
  gobin=$(mktemp -d "$PEERS/.gobin.XXXXXX")
  local start=$SECONDS
  log "start: $name ($pkg)"
  if ! nice -n 10 env GOBIN="$gobin" go install -p "$JOBS" -ldflags "$ldflags" "$pkg"; then
    rm -rf "$gobin"
    log "FAILED: $name after $((SECONDS - start))s"
    return 1
  fi
  mv "$gobin"/* "$PEERS/$name"
  rm -rf "$gobin"
  log "done: $name in $((SECONDS - start))s, reports $(installed_version "$name")"
}

build_helm4() {
  if up_to_date helm4; then
    log "helm4 $HELM4_VERSION present"
    return
  fi
  local mod=helm.sh/helm/v4
  # The -X flags of helm's Makefile, so `helm version` knows the pin.
  install_as helm4 "$mod/cmd/helm@$HELM4_VERSION" \
    "-s -w -X $mod/internal/version.version=$HELM4_VERSION -X $mod/internal/version.gitTreeState=clean"
}

build_kubedog() {
  if up_to_date kubedog; then
    log "kubedog $KUBEDOG_VERSION present"
    return
  fi
  install_as kubedog "github.com/werf/kubedog/cmd/kubedog@$KUBEDOG_VERSION" \
    "-s -w -X github.com/werf/kubedog.Version=$KUBEDOG_VERSION"
}

check_all() {
  local rc=0 name
  for name in helm4 kubedog; do
    if up_to_date "$name"; then
      log "$name $(wanted_version "$name"): ok"
    else
      log "$name: want $(wanted_version "$name"), have '$(installed_version "$name")'"
      rc=1
    fi
  done
  return $rc
}

main() {
  if [[ ${1:-} == --check ]]; then
    check_all
    return
  fi
  command -v go >/dev/null || {
    echo "bench/peers.sh: 'go' not found in PATH" >&2
    exit 2
  }
  mkdir -p "$PEERS"
  log "using $(go env GOVERSION), -p $JOBS"
  local rc=0
  build_helm4 || rc=1
  build_kubedog || rc=1
  check_all || rc=1
  return $rc
}

main "$@"
