#!/usr/bin/env bash
# GPU check, for a person with an NVIDIA GPU (or a Mac): builds llama-cpp-python for the GPU in a
# separate virtual environment (.venv-gpu, so the CPU .venv stays as it is), then runs
# `openlid doctor`: hardware, layers really offloaded, tokens/s on GPU vs CPU with Gemma 3 270M.
#   packaging/gpu_check.sh            # CUDA on Linux/Windows, Metal on macOS
#   BACKEND=vulkan packaging/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${BACKEND:-$([ "$(uname -s)" = Darwin ] && echo metal || echo cuda)}
case "$backend" in
  cuda) cmake_args="-DGGML_CUDA=on" ;;
  metal) cmake_args="-DGGML_METAL=on" ;;
  vulkan) cmake_args="-DGGML_VULKAN=on" ;;
  *) echo "unknown BACKEND=$backend (cuda, metal, vulkan)" >&2; exit 2 ;;
esac
python3 -m venv .venv-gpu
.venv-gpu/bin/python -m pip install --upgrade pip
# --no-cache-dir: pip's wheel cache does not know the backend and would hand back a CPU build.
CMAKE_ARGS="$cmake_args" .venv-gpu/bin/python -m pip install --no-cache-dir --force-reinstall \
  --no-deps "llama-cpp-python>=0.3.36"
.venv-gpu/bin/python -m pip install -e ".[demo]"
.venv-gpu/bin/openlid doctor --tokens 128 "$@"
