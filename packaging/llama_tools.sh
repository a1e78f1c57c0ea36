#!/usr/bin/env bash
# llama.cpp's own tools, built from the llama.cpp vendored in the very llama-cpp-python sdist
# uv.lock pins (the engine's llama.cpp), with the Makefile's CPU flags, into build/llama.cpp/
# (ignored by git, never shipped). Prints the path of each tool asked for, one a line:
#   packaging/llama_tools.sh llama-bench llama-server
# `openlid bench` runs llama-bench as the decode ceiling (packaging/llama_bench.sh runs it
# alone); the tests hold the engine's draws to llama-server's (tests/engine/test_llama_parity.py)
# where these are built. About 4 minutes for llama-bench on 2 cores, 8 for both.
# `--source` only fetches and unpacks that sdist and prints its folder (packaging/gpu_device.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 TOOL... (llama-bench, llama-server) | --source" >&2; exit 2; }
version=$(sed -n '/^name = "llama-cpp-python"$/{n;s/^version = "\(.*\)"$/\1/p;q;}' uv.lock)
dir=build/llama.cpp
fetch() {
  mkdir -p "$dir"
  if [ ! -d "$dir/llama_cpp_python-$version" ]; then
    .venv/bin/python -m pip download --quiet --no-binary :all: --no-deps \
      "llama-cpp-python==$version" -d "$dir/sdist"
    tar xzf "$dir/sdist/llama_cpp_python-$version.tar.gz" -C "$dir"
  fi
}
if [ "$1" = --source ]; then fetch; echo "$dir/llama_cpp_python-$version"; exit 0; fi
missing=()
for tool in "$@"; do [ -x "$dir/build/bin/$tool" ] || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  fetch
  flags=""
  # As the Makefile builds it: ggml's AMX kernels crash on VMs that report AMX without tile state.
  if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  fi
  echo "building ${missing[*]} from llama-cpp-python $version's llama.cpp (log: $dir/build.log)" >&2
  if ! { CFLAGS="$flags" CXXFLAGS="$flags" cmake \
           -S "$dir/llama_cpp_python-$version/vendor/llama.cpp" -B "$dir/build" \
           -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_CUDA=off \
           -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON &&
         cmake --build "$dir/build" --target "${missing[@]}" -j "$(nproc 2>/dev/null || echo 2)"
       } >"$dir/build.log" 2>&1; then
    tail -20 "$dir/build.log" >&2
    exit 1
  fi
fi
for tool in "$@"; do echo "$dir/build/bin/$tool"; done
