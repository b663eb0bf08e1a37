#!/usr/bin/env bash
# One idempotent set-up: installs only what is missing, and is quick when nothing is.
#   Debian packages (ffmpeg, PyTorch and friends for /usr/bin/python3, linters, chromium, and
#   PostgreSQL, whose binaries the tests run a server of their own from)
#   node_modules via `npm ci` when missing or older than package-lock.json
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ffmpeg python3-torch python3-numpy python3-scipy python3-pytest python3-skimage
  python3-matplotlib libopenblas0-pthread black flake8 chromium postgresql
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present (${#APT_PACKAGES[@]})"
fi

# npm ci rewrites node_modules/.package-lock.json, so its age tells when the last install was.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci (node_modules missing or older than package-lock.json)"
  # onnxruntime-node's install script would download CUDA binaries; its CPU provider is built in.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
else
  echo "setup: node_modules up to date with package-lock.json"
fi
echo "setup: done"
