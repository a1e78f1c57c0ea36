"""llama.cpp's own `llama-bench` as a side of `openlid bench`: the decode ceiling (issue #16:
decode with capture ÷ llama-bench tg ≥ 0.95), measured in the same run and interleaved with the
engine's rounds, so a neighbour's load on a shared machine hits it alike.

The binary is not shipped: `packaging/llama_tools.sh llama-bench` (or `packaging/llama_bench.sh`)
builds it from the llama.cpp vendored in the locked llama-cpp-python sdist (the engine's own
llama.cpp) into the checkout's `build/`,
where the bench finds it; `--llama-bench PATH` or $OPENLID_LLAMA_BENCH name another. Without
one the report says how to get it and carries on.

Each counted round runs one `llama-bench -p 0 -n TOKENS -r 1` (it warms up itself) with the
engine's load settings as llama.cpp takes them: threads, flash attention, the KV cache's type,
the GPU layers the engine really offloaded, and a KV cache already holding DEPTH tokens, about
the chains' prompts. llama-bench decodes a random token each step and samples nothing: its
tokens/s is decode alone, the same rate the engine's tokens/s counts (a decode per token after
the first).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from desktop.core.hardware import default_threads
from desktop.core.model_info import LoadSettings, ModelInfo

ENV = "OPENLID_LLAMA_BENCH"
# Where packaging/llama_tools.sh leaves it, in a source checkout.
BUILT = Path(__file__).resolve().parents[2] / "build/llama.cpp/build/bin/llama-bench"
DEPTH = 16  # tokens already in the KV cache when the timed decode starts
TIMEOUT_S = 600.0
HOW_TO_GET = ("packaging/llama_tools.sh llama-bench builds it from the engine's own llama.cpp; "
              "or pass --llama-bench PATH")


class LlamaBenchError(RuntimeError):
    """llama-bench could not be run or its answer read; the message says why in words."""


@dataclass(frozen=True)
class LlamaBench:
    binary: Path
    args: tuple[str, ...]  # everything after the binary

    def command(self) -> list[str]:
        return [str(self.binary), *self.args]

    def run(self) -> float:
        """One run's decode rate in tokens/s."""
        try:
            out = subprocess.run(self.command(), capture_output=True, text=True,
                                 timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LlamaBenchError(f"llama-bench ({self.binary}) did not run: {exc}") from exc
        if out.returncode != 0:
            lines = [line for line in out.stderr.splitlines() if line.strip()]
            said = f": {lines[-1].strip()}" if lines else ""
            raise LlamaBenchError(f"llama-bench ({self.binary}) failed with exit status "
                                  f"{out.returncode}{said}")
        return read_tokens_per_second(out.stdout)


def read_tokens_per_second(stdout: str) -> float:
    """The tg test's mean tokens/s from llama-bench's `-o json` answer."""
    try:
        runs = json.loads(stdout)
        rate = float(next(r["avg_ts"] for r in runs if int(r.get("n_gen", 0)) > 0))
    except (ValueError, TypeError, KeyError, AttributeError, StopIteration) as exc:
        raise LlamaBenchError(f"llama-bench's answer could not be read ({exc}): "
                              f"{stdout.strip()[:200]!r}") from exc
    if not rate > 0:
        raise LlamaBenchError(f"llama-bench reported {rate} tokens/s")
    return rate


def find_binary(asked: str | None) -> Path | None:
    """The llama-bench to run: the one asked for (an error in words when it is not an
    executable file), else $OPENLID_LLAMA_BENCH, else the checkout's build; None when none."""
    named = asked or os.environ.get(ENV) or ""
    if named:
        path = Path(named).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            where = "--llama-bench" if asked else f"${ENV}"
            raise LlamaBenchError(f"{where} {named}: not an executable file")
        return path
    return BUILT if BUILT.is_file() and os.access(BUILT, os.X_OK) else None


def llama_bench(binary: Path, model: str, settings: LoadSettings, info: ModelInfo,
                tokens: int) -> LlamaBench:
    """llama-bench set up as the engine loaded the model."""
    threads = settings.n_threads or default_threads()
    gpu_layers = max(info.n_layers_offloaded, 0)
    return LlamaBench(binary, (
        "-m", model, "-t", str(threads), "-p", "0", "-n", str(tokens), "-d", str(DEPTH),
        "-r", "1", "-fa", settings.flash_attn, "-ngl", str(gpu_layers),
        "-ctk", settings.kv_cache_type, "-ctv", settings.kv_cache_type, "-o", "json",
    ))
