#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only when missing.
# Installing needs root (CI runs as root); without it, say what to install.
set -euo pipefail

packages=(libev-dev liburing-dev libssl-dev openssl libc-ares-dev dnsmasq netcat-openbsd redis-tools redis-server curl wrk nginx-light gcc util-linux linux-perf)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
