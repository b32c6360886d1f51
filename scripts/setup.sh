#!/usr/bin/env bash
# One-step, idempotent set-up on Debian (as root): system packages, a virtual environment in
# .venv, and this package with every extra, at the versions pinned in scripts/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

# libusb-1.0-0: Open3D needs it to import. libvulkan1 + mesa-vulkan-drivers: offscreen rendering
# on the CPU (Vulkan through llvmpipe). xvfb + xauth: a virtual display for the viewer's windows.
# libgl1, libegl1, libgomp1: Open3D's and torch's shared-library needs.
packages=(libusb-1.0-0 libvulkan1 mesa-vulkan-drivers xvfb xauth libgl1 libegl1 libgomp1)
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then packages+=(python3 python3-venv python3-pip); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# torch==2.13.0 is pinned: an unpinned torch may pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt torch==2.13.0 -e '.[all]' 2>&1 \
  | { grep -v -E "^WARNING: Location .* is ignored" || true; }
.venv/bin/python -c "import neural_sdf, torch, open3d, trimesh, skimage" >/dev/null
