# Openlid: `make run` installs everything into .venv and starts the app with the ready model;
# `make test` does the same set-up and runs the whole test suite.
#
# llama-cpp-python builds from source (about 8 minutes on 2 cores) and pip caches the wheel.
# Backend: CUDA when nvcc is found and nvidia-smi sees a GPU (a CUDA build for a machine without
# one only costs build time), Metal on macOS (llama.cpp's default), otherwise CPU.
# Force one with `make run BACKEND=cpu` (or cuda / metal / vulkan). After changing the backend,
# run `make clean-llama` once so pip rebuilds instead of reusing its cached wheel.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.openlid-installed

UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)
ifeq ($(origin BACKEND), undefined)
  ifneq ($(and $(shell command -v nvcc 2>/dev/null),$(shell nvidia-smi -L 2>/dev/null | grep -m1 GPU)),)
    BACKEND := cuda
  else ifeq ($(UNAME_S),Darwin)
    BACKEND := metal
  else
    BACKEND := cpu
  endif
endif

ifeq ($(BACKEND),cuda)
  LLAMA_CMAKE_ARGS := -DGGML_CUDA=on
else ifeq ($(BACKEND),metal)
  LLAMA_CMAKE_ARGS := -DGGML_METAL=on
else ifeq ($(BACKEND),vulkan)
  LLAMA_CMAKE_ARGS := -DGGML_VULKAN=on
else ifeq ($(UNAME_S),Darwin)
  LLAMA_CMAKE_ARGS := -DGGML_METAL=off
else
  LLAMA_CMAKE_ARGS := -DGGML_CUDA=off
endif

# ggml's AMX kernels segfault on virtual machines whose hypervisor reports AMX but does not hand
# out tile state (seen on this project's x86-64 machines): build the native CPU code without them.
ifeq ($(UNAME_S)-$(UNAME_M),Linux-x86_64)
  LLAMA_CFLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif

# torch for safetensors models: the release the tests ran with (a CPU build where pip finds one);
# `make test TORCH_SPEC=torch` takes the newest instead.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test install bench package clean-llama lint

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" \
		$(BIN)/python -m pip install -e ".[dev,demo,safetensors]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/openlid

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check desktop tests
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/openlid bench --threads 2

# The double-click app (PyInstaller one-folder bundle in dist/), then a check that starts it.
package: $(STAMP)
	$(BIN)/python -m pip install pyinstaller
	packaging/build.sh --check

clean-llama:
	$(BIN)/python -m pip cache remove llama_cpp_python || true
	$(BIN)/python -m pip uninstall -y llama-cpp-python || true
	rm -f $(STAMP)
