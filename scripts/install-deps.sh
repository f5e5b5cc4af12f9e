#!/usr/bin/env bash
# Installs what the end-to-end tests and benchmarks compare against, from
# Debian's packages: etcd 3.4's etcdctl (the client the server must satisfy),
# etcd itself (the baseline of `npm run bench -- server`), and chromium with
# a font (the headless browser the visualiser's tests drive through
# playwright-core), and iproute2 (`ip`: the partition tests put each member
# in a network namespace and cut the links between them). Idempotent:
# packages already present are left alone. CI runs it before the tests so
# that nothing skips there; elsewhere the tests that need a package skip and
# say to run this script.
set -euo pipefail

packages=(etcd-client etcd-server chromium fonts-dejavu-core iproute2)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: already installed: ${packages[*]}"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install-deps: apt-get not found; install ${missing[*]} (etcd 3.4) by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
