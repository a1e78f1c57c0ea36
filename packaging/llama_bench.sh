#!/usr/bin/env bash
# llama.cpp's own `llama-bench`, the ceiling `openlid bench` is held against (issue #16: decode
# with capture ÷ llama-bench tg ≥ 0.95). Built once from the llama.cpp vendored in the very
# llama-cpp-python sdist uv.lock pins (the engine's llama.cpp), with the Makefile's CPU flags,
# into build/llama-bench/ (ignored by git, never shipped); then run on the ready model:
#   packaging/llama_bench.sh                  # tg128, 2 threads, 3 repetitions
#   THREADS=4 packaging/llama_bench.sh -fa 1  # more threads; extra arguments go to llama-bench
# Compare its tg figure with `openlid bench --threads 2 --tokens 128` run right after it.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n '/^name = "llama-cpp-python"$/{n;s/^version = "\(.*\)"$/\1/p;q;}' uv.lock)
dir=build/llama-bench
bin=$dir/build/bin/llama-bench
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  .venv/bin/python -m pip download --quiet --no-binary :all: --no-deps \
    "llama-cpp-python==$version" -d "$dir/sdist"
  tar xzf "$dir/sdist/llama_cpp_python-$version.tar.gz" -C "$dir"
  flags=""
  # As the Makefile builds it: ggml's AMX kernels crash on VMs that report AMX without tile state.
  if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  fi
  CFLAGS="$flags" CXXFLAGS="$flags" cmake -S "$dir/llama_cpp_python-$version/vendor/llama.cpp" \
    -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_CUDA=off \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$dir/build" --target llama-bench -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
model=$(.venv/bin/python -c \
  "from desktop.core.ready_model import ready_model_path; print(ready_model_path())")
echo "llama-bench from llama-cpp-python $version's llama.cpp; model $model" >&2
"$bin" -m "$model" -t "${THREADS:-2}" -p 0 -n 128 -r 3 "$@"
