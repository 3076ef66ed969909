#!/usr/bin/env bash
# Installs the Debian packages HelpDesk needs when any is missing (make calls this first).
set -euo pipefail
packages=(libhiredis-dev libpq-dev libssl-dev libjemalloc-dev redis-server redis-tools postgresql nginx haproxy docker-compose chromium libjs-chart.js python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
