#!/usr/bin/env bash
# Puts the binaries of the local test fleet in place on a Debian machine.
#
# With Go >= 1.26 and the Go module proxy (the normal path), each program is built from
# its own small wrapper module in fleet/go/ (go.mod and go.sum checked in; the version is
# the one its go.mod requires):
#   fleet/go/kubernetes  kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes)
#   fleet/go/etcd        etcd (go.etcd.io/etcd/server/v3)
#   fleet/go/vault       vault, the HashiCorp Vault server and CLI (github.com/hashicorp/vault)
#   fleet/go/helm        helm, the Helm 4 CLI (helm.sh/helm/v4), a peer to compare with
#   fleet/go/registry    registry, the CNCF distribution registry (github.com/distribution/
#                        distribution/v3): the fleet's OCI registry for charts by reference
# all with GOTOOLCHAIN=local (a clear error rather than a toolchain download),
# CGO_ENABLED=0, -trimpath, under `nice -n 10`.
#
# Without a usable Go or proxy (the fallback, the fleet's old set-up): etcd from Debian's
# etcd-server (3.4), kube-apiserver and kube-controller-manager v1.20 built from Debian's
# `kubernetes` source package, and RustyVault (crates.io rusty_vault) for Vault. The
# fleet says which it runs (`flotilla-fleet status`).
#
# Everything built is cached under $FLOTILLA_CACHE (default ~/.cache/flotilla), keyed by
# program and version, so a second run is a no-op; $FLOTILLA_CACHE/binaries.env tells the
# fleet where they are. A binary named by FLOTILLA_ETCD, FLOTILLA_KUBE_APISERVER,
# FLOTILLA_KUBE_CONTROLLER_MANAGER, FLOTILLA_KUBECTL, FLOTILLA_VAULT, FLOTILLA_HELM or
# FLOTILLA_REGISTRY is used as it is and nothing is built for it. FLOTILLA_NO_GO=1 forces the fallback.
#
# Debian's chromium and chromium-driver are installed from apt for the dashboard's
# browser test (about 70 s the first time).
#
# First run on a fresh machine, 2 cores: about 1,760 s of CPU for the Go path, 15-20
# minutes on idle cores, 47 minutes measured on cores shared with two other builds (see
# fleet/README.md for each program's figure); later runs: under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CACHE="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}"
RUSTY_VAULT_VERSION="0.2.1"
mkdir -p "$CACHE"
SCRIPT_STARTED=$SECONDS

say() { printf '[install-deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

APT_UPDATED=""
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]}"
  local started=$SECONDS
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  say "apt-get install took $((SECONDS - started)) s"
}

# The value of variable VAR when it names an executable ("" when unset; exit 2 when it
# names something else).
from_variable() { # VAR
  local var="$1"
  [ -n "${!var:-}" ] || return 1
  [ -x "${!var}" ] || { say "$var=${!var} is not an executable file"; exit 2; }
  echo "${!var}"
}

# Tools the fleet's set-up itself uses, tmux for the tests that drive a terminal
# (fleet::terminal), and a C toolchain: rustup brings none, and ring
# (and the fallback's rusty_vault) need one.
apt_install openssl curl ca-certificates gcc libc6-dev make pkg-config procps tmux

# The dashboard's browser test (fleet::dashboard) drives Debian's chromium through
# chromedriver: /usr/bin/chromium and /usr/bin/chromedriver. About 70 s on a fresh
# machine (measured: 69 s, apt-get update included, some 300 MB with their
# libraries); nothing when they are installed.
apt_install chromium chromium-driver

# ---- the Go path ----------------------------------------------------------------------

# A Go toolchain of at least 1.26 (the wrapper modules say `go 1.26.0`): $GO, then
# /usr/local/go/bin/go, then PATH (Debian's golang-go is older and is skipped).
find_go() {
  local candidate version
  for candidate in "${GO:-}" /usr/local/go/bin/go "$(command -v go 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    version=$("$candidate" env GOVERSION 2>/dev/null || true)   # go1.26.8
    version=${version#go}
    local major=${version%%.*} rest=${version#*.}
    local minor=${rest%%.*}
    if [ "${major:-0}" -gt 1 ] 2>/dev/null || { [ "${major:-0}" -eq 1 ] && [ "${minor:-0}" -ge 26 ]; } 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

# The version a wrapper module requires of its main module: `require_version DIR MODULE`.
require_version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1/go.mod"
}

go_env() {
  env GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" "$@"
}

# Downloads the modules of one wrapper (a no-op when the module cache has them).
# Fails when the proxy cannot be reached.
go_download() { # DIR
  local dir="$1" started=$SECONDS
  say "go mod download in ${dir#"$ROOT"/} (module cache: $("$GOBIN" env GOMODCACHE))"
  (cd "$dir" && go_env nice -n 10 "$GOBIN" mod download) || return 1
  say "  modules present after $((SECONDS - started)) s"
}

# go_build NAME VERSION DIR OUT LDFLAGS TAGS "BINARY..." PACKAGE...: builds PACKAGEs of
# the wrapper module DIR into OUT (a cache folder), unless OUT holds every BINARY already.
# One package is built as the one BINARY named (etcd's main package is the module root
# go.etcd.io/etcd/server/v3, which go would name `server`).
go_build() {
  local name="$1" version="$2" dir="$3" out="$4" ldflags="$5" tags="$6" bins="$7"
  shift 7
  local bin missing=""
  for bin in $bins; do
    [ -x "$out/$bin" ] || missing=1
  done
  if [ -z "$missing" ]; then
    say "$name $version: cached in $out"
    return 0
  fi
  go_download "$dir" || return 1
  local tmp="$out.partial" started=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  say "building $name $version ($*) with $("$GOBIN" env GOVERSION); log in $tmp/build.log"
  local target="$tmp/"
  [ $# -gt 1 ] || target="$tmp/$bins"
  if ! (cd "$dir" && go_env nice -n 10 "$GOBIN" build -trimpath ${tags:+-tags="$tags"} \
          -ldflags "$ldflags" -o "$target" "$@" >"$tmp/build.log" 2>&1); then
    say "the $name build failed; last lines of $tmp/build.log:"; tail -n 30 "$tmp/build.log" >&2
    return 1
  fi
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"; mv "$tmp" "$out"
  say "built $name $version in $((SECONDS - started)) s; cached in $out"
}

build_with_go() {
  local k8s etcd vault helm registry minor ld p
  k8s=$(require_version fleet/go/kubernetes k8s.io/kubernetes)
  etcd=$(require_version fleet/go/etcd go.etcd.io/etcd/server/v3)
  vault=$(require_version fleet/go/vault github.com/hashicorp/vault)
  helm=$(require_version fleet/go/helm helm.sh/helm/v4)
  registry=$(require_version fleet/go/registry github.com/distribution/distribution/v3)
  [ -n "$k8s" ] && [ -n "$etcd" ] && [ -n "$vault" ] && [ -n "$helm" ] && [ -n "$registry" ] || {
    say "fleet/go/*/go.mod: cannot read the versions to build"; return 1; }

  # Kubernetes: without the version ldflags /version says v0.0.0-master.
  minor=${k8s#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  K8S_OUT="$CACHE/kubernetes-$k8s/bin"
  if [ -z "${FLOTILLA_KUBE_APISERVER:-}" ] || [ -z "${FLOTILLA_KUBE_CONTROLLER_MANAGER:-}" ] || [ -z "${FLOTILLA_KUBECTL:-}" ]; then
    go_build kubernetes "$k8s" "$ROOT/fleet/go/kubernetes" "$K8S_OUT" "$ld" "selinux,notest,grpcnotrace" \
      "kube-apiserver kube-controller-manager kubectl" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl || return 1
  fi
  ETCD_OUT="$CACHE/etcd-$etcd/bin"
  if [ -z "${FLOTILLA_ETCD:-}" ]; then
    go_build etcd "$etcd" "$ROOT/fleet/go/etcd" "$ETCD_OUT" "-s -w" "" etcd go.etcd.io/etcd/server/v3 || return 1
  fi
  # Vault embeds its version (from its VERSION file): `vault version` is right as built.
  VAULT_OUT="$CACHE/vault-$vault/bin"
  if [ -z "${FLOTILLA_VAULT:-}" ]; then
    go_build vault "$vault" "$ROOT/fleet/go/vault" "$VAULT_OUT" "-s -w" "" vault github.com/hashicorp/vault || return 1
  fi
  HELM_OUT="$CACHE/helm-$helm/bin"
  if [ -z "${FLOTILLA_HELM:-}" ]; then
    go_build helm "$helm" "$ROOT/fleet/go/helm" "$HELM_OUT" \
      "-s -w -X helm.sh/helm/v4/internal/version.version=$helm" "" helm helm.sh/helm/v4/cmd/helm || return 1
  fi
  # The registry embeds its version too, for `registry --version`.
  REGISTRY_OUT="$CACHE/registry-$registry/bin"
  if [ -z "${FLOTILLA_REGISTRY:-}" ]; then
    go_build registry "$registry" "$ROOT/fleet/go/registry" "$REGISTRY_OUT" \
      "-s -w -X github.com/distribution/distribution/v3/version.version=$registry" "" registry \
      github.com/distribution/distribution/v3/cmd/registry || return 1
  fi

  ETCD=$(from_variable FLOTILLA_ETCD || echo "$ETCD_OUT/etcd")
  APISERVER=$(from_variable FLOTILLA_KUBE_APISERVER || echo "$K8S_OUT/kube-apiserver")
  CONTROLLER_MANAGER=$(from_variable FLOTILLA_KUBE_CONTROLLER_MANAGER || echo "$K8S_OUT/kube-controller-manager")
  KUBECTL=$(from_variable FLOTILLA_KUBECTL || echo "$K8S_OUT/kubectl")
  VAULT=$(from_variable FLOTILLA_VAULT || echo "$VAULT_OUT/vault")
  HELM=$(from_variable FLOTILLA_HELM || echo "$HELM_OUT/helm")
  REGISTRY=$(from_variable FLOTILLA_REGISTRY || echo "$REGISTRY_OUT/registry")
  RVAULT=""
}

# ---- the fallback: Debian's Kubernetes 1.20 and RustyVault ------------------------------
ensure_deb_src() {
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    say "adding a deb-src entry for bookworm main (to fetch Debian's kubernetes source)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo tee /etc/apt/sources.list.d/flotilla-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT_UPDATED=""
  fi
}

build_debian_kubernetes() {
  ensure_deb_src
  apt_install golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev
  [ -n "$APT_UPDATED" ] || { say "apt-get update"; apt-get update -qq; APT_UPDATED=1; }
  local version
  version=$(apt-cache showsrc kubernetes | awk '/^Version:/ {print $2; exit}')
  [ -n "$version" ] || { say "apt-cache showsrc kubernetes found no source package"; exit 3; }
  local out="$CACHE/kubernetes-$version/bin"
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ]; then
    echo "$out"; return 0
  fi
  local work="$CACHE/kubernetes-$version/src"
  rm -rf "$work"; mkdir -p "$work"
  say "downloading Debian's kubernetes source $version"
  (cd "$work" && apt-get source --download-only kubernetes >/dev/null 2>&1)
  local orig
  orig=$(ls "$work"/kubernetes_*.orig.tar.* | head -n 1)
  say "unpacking $(basename "$orig")"
  mkdir -p "$work/tree"
  tar -xf "$orig" -C "$work/tree" --strip-components=1
  say "replacing vendor/github.com/modern-go/reflect2 with Debian's v1.0.2 (v1.0.1 crashes on Go >= 1.18)"
  rm -rf "$work/tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$work/tree/vendor/github.com/modern-go/reflect2"
  mkdir -p "$work/tree/.go/src/k8s.io"
  ln -sfn ../../.. "$work/tree/.go/src/k8s.io/kubernetes"
  say "building kube-apiserver and kube-controller-manager with Debian's Go (about 4 minutes on 2 cores)"
  local started=$SECONDS
  (cd "$work/tree" && PATH="/usr/lib/go/bin:$PATH" GOPATH="$work/tree/.go" GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 \
     make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1) || {
    say "the kubernetes build failed; last lines of $work/build.log:"; tail -n 30 "$work/build.log" >&2; exit 3; }
  mkdir -p "$out"
  cp "$work/tree/_output/bin/kube-apiserver" "$work/tree/_output/bin/kube-controller-manager" "$out/"
  say "built in $((SECONDS - started)) s; cached in $out"
  rm -rf "$work"
  echo "$out"
}

install_fallback() {
  ETCD=$(from_variable FLOTILLA_ETCD) || {
    if [ ! -x /usr/bin/etcd ]; then apt_install etcd-server; fi
    ETCD=/usr/bin/etcd
  }
  APISERVER=$(from_variable FLOTILLA_KUBE_APISERVER) || APISERVER=""
  CONTROLLER_MANAGER=$(from_variable FLOTILLA_KUBE_CONTROLLER_MANAGER) || CONTROLLER_MANAGER=""
  if [ -z "$APISERVER" ] || [ -z "$CONTROLLER_MANAGER" ]; then
    local kdir
    kdir=$(build_debian_kubernetes)
    [ -n "$APISERVER" ] || APISERVER="$kdir/kube-apiserver"
    [ -n "$CONTROLLER_MANAGER" ] || CONTROLLER_MANAGER="$kdir/kube-controller-manager"
  fi
  KUBECTL=$(from_variable FLOTILLA_KUBECTL || command -v kubectl || true)
  local cached="$CACHE/rusty_vault-$RUSTY_VAULT_VERSION/bin/rvault"
  RVAULT=$(from_variable FLOTILLA_RVAULT) || RVAULT="$cached"
  if [ ! -x "$RVAULT" ]; then
    apt_install libssl-dev pkg-config
    say "cargo install rusty_vault $RUSTY_VAULT_VERSION (about 4 minutes on 2 cores)"
    local started=$SECONDS
    cargo install --quiet --locked --version "$RUSTY_VAULT_VERSION" --root "$CACHE/rusty_vault-$RUSTY_VAULT_VERSION" rusty_vault \
      || cargo install --quiet --version "$RUSTY_VAULT_VERSION" --root "$CACHE/rusty_vault-$RUSTY_VAULT_VERSION" rusty_vault
    say "built in $((SECONDS - started)) s"
  fi
  VAULT=""
  HELM=""
  REGISTRY=""
}

MODE=""
if [ -z "${FLOTILLA_NO_GO:-}" ] && GOBIN=$(find_go); then
  say "Go: $GOBIN ($("$GOBIN" env GOVERSION)); building the fleet's programs from fleet/go/*"
  if build_with_go; then
    MODE=go
  else
    say "the Go path failed (no module proxy? a build error above); falling back to Debian's Kubernetes 1.20 and RustyVault"
  fi
else
  say "no Go >= 1.26 (or FLOTILLA_NO_GO is set): falling back to Debian's Kubernetes 1.20 and RustyVault"
fi
[ -n "$MODE" ] || { install_fallback; MODE=fallback; }

say "etcd: $ETCD"
say "kube-apiserver: $APISERVER"
say "kube-controller-manager: $CONTROLLER_MANAGER"
[ -z "$KUBECTL" ] || say "kubectl: $KUBECTL"
[ -z "$VAULT" ] || say "vault: $VAULT"
[ -z "$RVAULT" ] || say "rvault (fallback Vault API): $RVAULT"
[ -z "$HELM" ] || say "helm: $HELM"
[ -z "$REGISTRY" ] || say "registry (OCI): $REGISTRY"

# The fleet reads this file to find the binaries (the variables above still win).
{
  echo "# written by scripts/install-deps.sh ($MODE)"
  echo "FLOTILLA_ETCD=$ETCD"
  echo "FLOTILLA_KUBE_APISERVER=$APISERVER"
  echo "FLOTILLA_KUBE_CONTROLLER_MANAGER=$CONTROLLER_MANAGER"
  [ -z "$KUBECTL" ] || echo "FLOTILLA_KUBECTL=$KUBECTL"
  [ -z "$VAULT" ] || echo "FLOTILLA_VAULT=$VAULT"
  [ -z "$RVAULT" ] || echo "FLOTILLA_RVAULT=$RVAULT"
  [ -z "$HELM" ] || echo "FLOTILLA_HELM=$HELM"
  [ -z "$REGISTRY" ] || echo "FLOTILLA_REGISTRY=$REGISTRY"
} >"$CACHE/binaries.env.tmp"
mv "$CACHE/binaries.env.tmp" "$CACHE/binaries.env"
say "binary paths written to $CACHE/binaries.env ($MODE); install-deps took $((SECONDS - SCRIPT_STARTED)) s"
