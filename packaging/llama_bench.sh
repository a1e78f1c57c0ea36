#!/usr/bin/env bash
# llama.cpp's own `llama-bench`, the ceiling `openlid bench` is held against (issue #16: decode
# with capture ÷ llama-bench tg ≥ 0.95), built once by packaging/llama_tools.sh (the engine's
# own llama.cpp, never shipped), then run on the ready model:
#   packaging/llama_bench.sh                  # tg128, 2 threads, 3 repetitions
#   THREADS=4 packaging/llama_bench.sh -fa 1  # more threads; extra arguments go to llama-bench
# `openlid bench` finds the built one by itself and runs it alongside its own rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(packaging/llama_tools.sh llama-bench)
model=$(.venv/bin/python -c \
  "from desktop.core.ready_model import ready_model_path; print(ready_model_path())")
echo "llama-bench from the engine's llama.cpp ($bin); model $model" >&2
"$bin" -m "$model" -t "${THREADS:-2}" -p 0 -n 128 -r 3 "$@"
