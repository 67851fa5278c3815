#!/usr/bin/env bash
# Install what kernel-lab needs (Debian packages; the CUDA toolkit must already be there) and build it.
# Usage: bash ci/setup.sh [BUILD_DIR]   (default build/). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
pkgs=(cmake ninja-build pkg-config libcjson-dev libpcre2-dev libutf8proc-dev gnuplot-nox clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13/bin /usr/local/cuda-12/bin; do [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break; done
fi
command -v nvcc >/dev/null 2>&1 || { echo "setup: nvcc not found: install the CUDA toolkit (12.x or 13.x) and put its bin/ on PATH" >&2; exit 1; }
jobs=$(nproc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_CUDA_ARCHITECTURES:+-DCMAKE_CUDA_ARCHITECTURES=$CMAKE_CUDA_ARCHITECTURES}
cmake --build "$build" -j"$jobs"
echo "setup: built into $build/ (klab, qwen3)"
