# Openlid: `make run` installs everything into .venv and starts the app with the ready model;
# `make test` does the same set-up and runs the whole test suite (what CI runs).
#
# Every package comes from uv.lock (exact versions and hashes, every supported Python and
# platform): `uv sync --locked` fails instead of resolving anew when pyproject.toml and the lock
# disagree. `make lock` upgrades the lock; the tests decide whether the upgrade lands.
# uv itself is bootstrapped from PyPI into .tools/ at the version below.
#
# llama-cpp-python (pinned by the lock) builds from source (about 8 minutes on 2 cores) and uv
# caches the built wheel. Backend: CUDA when nvcc is found and nvidia-smi sees a GPU (a CUDA
# build for a machine without one only costs build time), Metal on macOS (llama.cpp's default),
# otherwise CPU. Force one with `make run BACKEND=cpu` (or cuda / metal / vulkan); a change of
# backend drops the cached wheel so llama.cpp is rebuilt.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
BIN    := $(VENV)/bin

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

# torch (safetensors models) is locked like everything else, but on Linux its PyPI wheel is a
# CUDA build that pulls several GB of nvidia-*/cuda-*/triton wheels. uv installs everything
# else; pip then installs the locked torch version, which takes a CPU wheel where pip's
# configuration offers one (PyPI's wheel otherwise). `make test TORCH_SPEC=torch` takes the newest.
TORCH_VERSION := $(shell sed -n '/^name = "torch"$$/{n;s/^version = "\(.*\)"$$/\1/p;q;}' uv.lock)
TORCH_SPEC ?= torch==$(TORCH_VERSION)
CUDA_WHEELS := $(shell sed -n 's/^name = "\(nvidia-[^"]*\|cuda-[^"]*\|triton\)"$$/\1/p' uv.lock | sort -u)
SYNC_ARGS := --locked --all-extras --group package --no-install-package torch \
	$(foreach p,$(CUDA_WHEELS),--no-install-package $(p))

STAMP := $(VENV)/.openlid-installed-$(BACKEND)

.PHONY: run test install lock check-layers typecheck bench package clean-llama

$(UV):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock Makefile desktop/engine/_scan.c | $(UV)
	@# A venv built for another backend: drop uv's cached llama-cpp-python wheel so it rebuilds.
	@if ls $(VENV)/.openlid-installed-* >/dev/null 2>&1 && [ ! -e $(STAMP) ]; then \
		$(UV) cache clean llama-cpp-python; rm -f $(VENV)/.openlid-installed-*; fi
	test -x $(BIN)/python || $(UV) venv --seed --python $(PYTHON) $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" \
		$(UV) sync $(SYNC_ARGS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/openlid

check-layers: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check desktop tests

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite runs in two pytest-xdist processes, file by file (a file's fixtures load once). Most
# tests wait on sockets, child processes and timers, so two share two cores well; every model a
# test starts decodes with one thread there (OPENLID_THREADS=1, set by tests/conftest.py), since
# two models with two spinning llama.cpp threads each on two cores make every token many times
# slower. PYTEST_ARGS (e.g. tests/unit, or "-n 4 --dist loadfile" on a bigger machine) runs one
# plain pytest with those arguments instead; PYTEST_ARGS="--cpu-report" prints the CPU seconds
# per folder and the dearest tests.
PYTEST_ARGS ?=
PYTEST := QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

test: check-layers typecheck
ifeq ($(strip $(PYTEST_ARGS)),)
	$(PYTEST) -n 2 --dist loadfile
else
	$(PYTEST) $(PYTEST_ARGS)
endif

# Upgrade every locked package to the newest release the ranges in pyproject.toml allow.
lock: | $(UV)
	$(UV) lock --upgrade

bench: $(STAMP)
	$(BIN)/openlid bench --threads 2

# The double-click app (PyInstaller one-folder bundle in dist/), then a check that starts it.
package: $(STAMP)
	packaging/build.sh --check

clean-llama: | $(UV)
	$(UV) cache clean llama-cpp-python
	rm -f $(VENV)/.openlid-installed-*
