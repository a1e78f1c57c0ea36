#!/usr/bin/env bash
# Issue #16's GPU figures on a machine that can fetch nothing and takes at most 64 MiB with each
# command (this workplace's lent device machine: an NVIDIA GPU, nvcc, CMake, ninja and a Python
# 3.12 with numpy; see packaging/gpu_check.sh for a person's own GPU machine, which can fetch).
#
#   packaging/gpu_device.sh prepare   # here: fills .gpu/ (~17 MB, ignored by git)
#   packaging/gpu_device.sh run       # there, with .gpu carried: figures into $OUT
#     (or `build`, then `measure`: two commands, each well inside a 10-minute limit)
#
# `prepare` packs the llama.cpp vendored in the locked llama-cpp-python sdist (the engine's own,
# its bulky unbuilt parts left out) with that sdist's Python package, the few pure-Python wheels
# the engine needs beyond what the device machine has, and a stand-in for the ready model
# (packaging/gpu_device.py: its header and tokenizer, each tensor repeating its first blocks —
# decoding it costs what decoding the ready model costs). `run` builds llama.cpp there for the
# GPU (shared libraries into llama-cpp-python's package, and llama-bench), builds
# the capture's C pass, writes the stand-in model, then runs `openlid doctor` (layers really
# offloaded, GPU against CPU) and `openlid bench` on the cheap chains with every layer offloaded
# and llama-bench alongside (decode with capture ÷ llama-bench on the GPU). BACKEND=cpu runs the
# same steps without the GPU (how this script is checked on a machine without one).
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-}
pack=.gpu
version=$(sed -n '/^name = "llama-cpp-python"$/{n;s/^version = "\(.*\)"$/\1/p;q;}' uv.lock)
locked() { sed -n "/^name = \"$1\"\$/{n;s/^version = \"\\(.*\\)\"\$/\\1/p;q;}" uv.lock; }

prepare() {
  local src
  src=$(packaging/llama_tools.sh --source)
  rm -rf "$pack" && mkdir -p "$pack/wheels"
  tar -cJf "$pack/llama.cpp.tar.xz" -C "$src" \
    --exclude=vendor/llama.cpp/models --exclude=vendor/llama.cpp/docs \
    --exclude=vendor/llama.cpp/tests --exclude=vendor/llama.cpp/examples \
    --exclude=vendor/llama.cpp/gguf-py --exclude=vendor/llama.cpp/media --exclude=vendor/llama.cpp/.git \
    --exclude=vendor/llama.cpp/tools/ui --exclude='vendor/llama.cpp/tools/server/public*' \
    vendor/llama.cpp llama_cpp
  .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    -d "$pack/wheels" "gguf==$(locked gguf)" "diskcache==$(locked diskcache)" \
    "platformdirs==$(.venv/bin/python -c 'import platformdirs; print(platformdirs.__version__)')"
  PYTHONPATH=. .venv/bin/python packaging/gpu_device.py prepare "$pack"
  du -sh "$pack"
}

out=${OUT:-gpu-out} work=/tmp/openlid-gpu python=${PYTHON:-python3}

build() {
  local backend=${BACKEND:-cuda}
  local gpu_args=(-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}")
  [ "$backend" = cpu ] && gpu_args=(-DGGML_CUDA=off)
  if command -v nvidia-smi >/dev/null; then nvidia-smi | tee "$out/nvidia-smi.txt"; fi
  tar -xJf "$pack/llama.cpp.tar.xz" -C "$work"
  echo "== building llama.cpp ($backend) $(date +%T)"
  cmake -S "$work/vendor/llama.cpp" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF "${gpu_args[@]}" >"$work/cmake.log" \
    || { tail -30 "$work/cmake.log"; exit 1; }
  cmake --build "$work/build" --target llama mtmd llama-bench -j "$(nproc)" >"$work/build.log" \
    || { tail -40 "$work/build.log"; exit 1; }
  echo "== built $(date +%T)"
}

measure() {
  [ -x "$work/build/bin/llama-bench" ] || { echo "build first: $0 build" >&2; exit 1; }
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --upgrade \
    --target "$work/site" "$pack"/wheels/*.whl
  # llama-cpp-python loads its libraries from its package's lib/ (libllama, libggml*, libmtmd).
  mkdir -p "$work/llama_cpp/lib" && cp -a "$work"/build/bin/*.so* "$work/llama_cpp/lib/"
  export PYTHONPATH="$work:$work/site:$PWD"
  "$python" packaging/gpu_device.py scan  # the capture's C pass, built for this Python
  "$python" packaging/gpu_device.py model "$pack" "$work/model.gguf"
  local model=("--model" "$work/model.gguf")
  echo "== openlid doctor $(date +%T)"
  OPENLID_HOME="$work/home" "$python" -m desktop doctor "${model[@]}" --tokens 128 \
    | tee "$out/doctor.txt"
  echo "== openlid bench $(date +%T)"
  OPENLID_HOME="$work/home" "$python" -m desktop bench "${model[@]}" --gpu-layers -1 \
    --chains greedy,default,base_model --tokens 128 --repeat 3 \
    --llama-bench "$work/build/bin/llama-bench" | tee "$out/bench.txt"
  echo "== done $(date +%T)"
}

case "$step" in
  prepare) prepare ;;
  build | measure | run)
    mkdir -p "$out" "$work"
    exec > >(tee -a "$out/gpu_device.log") 2>&1
    [ "$step" = measure ] || build
    [ "$step" = build ] || measure ;;
  *) echo "usage: $0 prepare | build | measure | run (build, then measure)" >&2; exit 2 ;;
esac
