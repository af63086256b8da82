#!/usr/bin/env bash
# Installs, as root on Debian 12, what the whimbrel lab needs: Docker, OpenSSH's sshd, the
# binaries the workload images are built from, and CRIU >= 4.2 (Debian 12's 3.17 fails on
# recent kernels). CRIU comes from Debian's next suite into a private root, run through its
# own dynamic loader, so the system's libc is never upgraded. Safe to run again.
set -euo pipefail

CRIU_ROOT=/usr/local/lib/whimbrel-criu
CRIU_WRAPPER=/usr/local/sbin/criu
CRIU_SUITE=${WHIMBREL_CRIU_SUITE:-forky}
DOCKER_NEXT_ROOT=/usr/local/lib/whimbrel-docker-next

if [ "$(id -u)" != 0 ]; then
  echo "install-system: run as root (it installs system packages)" >&2
  exit 2
fi

need_pkgs=(docker.io openssh-server redis-server redis-tools busybox-static iproute2 iptables
           nftables tmux procps psmisc util-linux python3 gcc libc6-dev sudo haproxy patchelf)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-system: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No daemon is started by package scripts on these machines (no systemd); the lab starts its own.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

criu_ok() {
  [ -x "$CRIU_WRAPPER" ] || return 1
  local v
  v=$("$CRIU_WRAPPER" --version 2>/dev/null | sed -n 's/^Version: //p')
  [ -n "$v" ] || return 1
  # Need >= 4.2
  [ "$(printf '%s\n%s\n' 4.2 "$v" | sort -V | head -n1)" = 4.2 ]
}

# Packages of Debian's next suite unpacked into a private root (never installed: the system's
# libc stays as it is). The mirror is the one this system already uses.
fetch_into() {
  local root=$1; shift
  local work
  work=$(mktemp -d)
  uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  if [ -z "$uri" ]; then
    uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  fi
  [ -n "$uri" ] || { echo "install-system: no Debian mirror found in the apt sources" >&2; exit 1; }
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $CRIU_SUITE main" > "$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
            -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
            -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends --download-only "$@" >/dev/null
  rm -rf "$root.new"
  mkdir -p "$root.new"
  for deb in "$work"/cache/archives/*.deb; do
    dpkg -x "$deb" "$root.new"
  done
  rm -rf "$work"
}

if ! criu_ok; then
  echo "install-system: fetching CRIU from Debian $CRIU_SUITE into $CRIU_ROOT"
  fetch_into "$CRIU_ROOT" criu
  rm -rf "$CRIU_ROOT"
  mv "$CRIU_ROOT.new" "$CRIU_ROOT"
  mkdir -p "$(dirname "$CRIU_WRAPPER")"
  cat > "$CRIU_WRAPPER" <<WRAP
#!/bin/sh
# whimbrel: CRIU from Debian $CRIU_SUITE, run with its own libraries (see install-system.sh).
R=$CRIU_ROOT
exec "\$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$R/usr/lib/x86_64-linux-gnu:\$R/lib/x86_64-linux-gnu" "\$R/usr/sbin/criu" "\$@"
WRAP
  chmod 755 "$CRIU_WRAPPER"
  criu_ok || { echo "install-system: CRIU from $CRIU_SUITE does not run" >&2; exit 1; }
fi

# A second Docker engine, the next suite's (dockerd, containerd, runc), for tests that run a
# node on it. Its binaries re-execute themselves (runc init), so the private loader cannot
# wrap them as it wraps CRIU: patchelf points each at the root's loader and libraries.
docker_next_ok() { "$DOCKER_NEXT_ROOT/bin/dockerd" --version >/dev/null 2>&1; }
if ! docker_next_ok; then
  echo "install-system: fetching Docker from Debian $CRIU_SUITE into $DOCKER_NEXT_ROOT"
  fetch_into "$DOCKER_NEXT_ROOT" docker.io
  lib="$DOCKER_NEXT_ROOT/usr/lib/x86_64-linux-gnu:$DOCKER_NEXT_ROOT/lib/x86_64-linux-gnu"
  # bin/ holds these alone, to go first on its dockerd's PATH: the suite's other tools
  # (its iptables, which CRIU's network lock runs) need its libc and stay off it.
  mkdir "$DOCKER_NEXT_ROOT.new/bin"
  for bin in usr/sbin/dockerd usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/sbin/runc \
             usr/sbin/docker-proxy; do
    patchelf --set-interpreter "$DOCKER_NEXT_ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
      --set-rpath "$lib" "$DOCKER_NEXT_ROOT.new/$bin"
    ln -s "$DOCKER_NEXT_ROOT/$bin" "$DOCKER_NEXT_ROOT.new/bin/"
  done
  ln -s "$DOCKER_NEXT_ROOT/usr/bin/docker-init" "$DOCKER_NEXT_ROOT.new/bin/"  # static
  rm -rf "$DOCKER_NEXT_ROOT"
  mv "$DOCKER_NEXT_ROOT.new" "$DOCKER_NEXT_ROOT"
  docker_next_ok || { echo "install-system: Docker from $CRIU_SUITE does not run" >&2; exit 1; }
fi
echo "install-system: $("$CRIU_WRAPPER" --version | head -n1), $(/usr/bin/docker --version)," \
  "next: $("$DOCKER_NEXT_ROOT/bin/dockerd" --version)"
