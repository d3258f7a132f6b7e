#!/usr/bin/env bash
# Puts the binaries of the local test fleet in place on a Debian machine:
#   etcd                      Debian package etcd-server
#   kube-apiserver,
#   kube-controller-manager   built from Debian's `kubernetes` source package
#                             (reflect2 replaced by Debian's v1.0.2, see docs/testing.md)
#   rvault                    crate rusty_vault, a Vault-API server
# Everything built is cached under $FLOTILLA_CACHE (default ~/.cache/flotilla), keyed by
# version, so a second run is a no-op. Binaries already named by FLOTILLA_ETCD,
# FLOTILLA_KUBE_APISERVER, FLOTILLA_KUBE_CONTROLLER_MANAGER, FLOTILLA_RVAULT or found on
# PATH are used as they are and nothing is built for them.
#
# First run on a fresh machine: about 10 minutes on 2 cores (apt, a 4-minute Go build,
# a 4-minute cargo install). Later runs: under a second.
set -euo pipefail

CACHE="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}"
RUSTY_VAULT_VERSION="0.2.1"
mkdir -p "$CACHE"

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
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Prints the path of a binary: the variable's value, else PATH, else the cached copy.
find_binary() { # VAR NAME CACHED_PATH
  local var="$1" name="$2" cached="$3"
  if [ -n "${!var:-}" ]; then
    [ -x "${!var}" ] || { say "$var=${!var} is not an executable file"; exit 2; }
    echo "${!var}"; return 0
  fi
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  if [ -x "$cached" ]; then echo "$cached"; return 0; fi
  return 1
}

# Tools the fleet's set-up itself uses, and a C toolchain: rustup brings none, and ring,
# rusty_vault's dependencies and the Go build need one.
apt_install openssl curl ca-certificates gcc libc6-dev make pkg-config procps

# ---- etcd ---------------------------------------------------------------------------
if ! ETCD=$(find_binary FLOTILLA_ETCD etcd /usr/bin/etcd); then
  apt_install etcd-server
  ETCD=/usr/bin/etcd
fi
say "etcd: $ETCD"

# ---- kube-apiserver and kube-controller-manager ---------------------------------------
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

build_kubernetes() {
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
  say "building kube-apiserver and kube-controller-manager (about 4 minutes on 2 cores)"
  local started=$SECONDS
  (cd "$work/tree" && GOPATH="$work/tree/.go" CGO_ENABLED=0 \
     make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1) || {
    say "the kubernetes build failed; last lines of $work/build.log:"; tail -n 30 "$work/build.log" >&2; exit 3; }
  mkdir -p "$out"
  cp "$work/tree/_output/bin/kube-apiserver" "$work/tree/_output/bin/kube-controller-manager" "$out/"
  say "built in $((SECONDS - started)) s; cached in $out"
  rm -rf "$work"
  echo "$out"
}

APISERVER=$(find_binary FLOTILLA_KUBE_APISERVER kube-apiserver /nonexistent) || APISERVER=""
CONTROLLER_MANAGER=$(find_binary FLOTILLA_KUBE_CONTROLLER_MANAGER kube-controller-manager /nonexistent) || CONTROLLER_MANAGER=""
if [ -z "$APISERVER" ] || [ -z "$CONTROLLER_MANAGER" ]; then
  cached=$(ls -d "$CACHE"/kubernetes-*/bin 2>/dev/null | head -n 1 || true)
  if [ -n "$cached" ] && [ -x "$cached/kube-apiserver" ] && [ -x "$cached/kube-controller-manager" ]; then
    kdir="$cached"
  else
    kdir=$(build_kubernetes)
  fi
  [ -n "$APISERVER" ] || APISERVER="$kdir/kube-apiserver"
  [ -n "$CONTROLLER_MANAGER" ] || CONTROLLER_MANAGER="$kdir/kube-controller-manager"
fi
say "kube-apiserver: $APISERVER"
say "kube-controller-manager: $CONTROLLER_MANAGER"

# ---- rvault -------------------------------------------------------------------------------
RVAULT_CACHED="$CACHE/rusty_vault-$RUSTY_VAULT_VERSION/bin/rvault"
if ! RVAULT=$(find_binary FLOTILLA_RVAULT rvault "$RVAULT_CACHED"); then
  apt_install libssl-dev pkg-config
  say "cargo install rusty_vault $RUSTY_VAULT_VERSION (about 4 minutes on 2 cores)"
  started=$SECONDS
  cargo install --quiet --locked --version "$RUSTY_VAULT_VERSION" --root "$CACHE/rusty_vault-$RUSTY_VAULT_VERSION" rusty_vault \
    || cargo install --quiet --version "$RUSTY_VAULT_VERSION" --root "$CACHE/rusty_vault-$RUSTY_VAULT_VERSION" rusty_vault
  say "built in $((SECONDS - started)) s"
  RVAULT="$RVAULT_CACHED"
fi
say "rvault: $RVAULT"

# The fleet reads this file to find the binaries (the variables above still win).
cat >"$CACHE/binaries.env" <<ENV
FLOTILLA_ETCD=$ETCD
FLOTILLA_KUBE_APISERVER=$APISERVER
FLOTILLA_KUBE_CONTROLLER_MANAGER=$CONTROLLER_MANAGER
FLOTILLA_RVAULT=$RVAULT
ENV
say "binary paths written to $CACHE/binaries.env"
