#!/usr/bin/env bash
# Installs, idempotently, what the tests need on a fresh Debian (bookworm) machine, as root.
# Debian packages: gcc/libc6-dev (static guest programs), python3, runc, zookeeper,
# OpenJDK and gson. npm: pouchdb-server (the CouchDB-compatible store for the CouchDB tests).
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

for p in gcc libc6-dev python3 runc zookeeper libgoogle-gson-java default-jdk-headless zip unzip; do
  pkg_installed "$p" || need_apt+=("$p")
done
# node: the machine image ships one; install Debian's when there is none.
have node || need_apt+=(nodejs)
have npm || need_apt+=(npm)

if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! have pouchdb-server; then
  echo "install-deps: npm install -g pouchdb-server"
  npm install -g --silent pouchdb-server@4.2.0 >/dev/null 2>&1 || npm install -g pouchdb-server@4.2.0
fi

if [ ! -e /dev/kvm ]; then
  echo "install-deps: WARNING: /dev/kvm is missing; the kvm and unikernel tests will fail" >&2
fi
go version
