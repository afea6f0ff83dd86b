#!/usr/bin/env bash
# Installs the Debian packages fsdiff needs to build and test. Idempotent: only calls apt-get when
# something is missing. Usage: scripts/deps.sh [--test]   (--test adds the PyTorch/PIL test oracles)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libstb-dev libopenmpi-dev openmpi-bin) # MPI: fsdiff train across machines
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(python3 python3-torch python3-numpy python3-pil python3-skimage) # skimage: second SSIM reference
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
