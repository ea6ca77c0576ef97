#!/usr/bin/env bash
# Installs what zonewatch needs to build, run its demo and run its tests on a
# fresh Debian machine with a Rust toolchain. Idempotent; needs root (or sudo).
set -euo pipefail
packages=(libpcap-dev tshark tcpreplay python3-scapy python3-venv pkg-config make perl gcc g++ libssl-dev zlib1g-dev iproute2 iputils-ping curl chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
