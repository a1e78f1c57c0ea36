"""`openlid bench`: the engine against a bare llama-cpp-python loop, same model, same threads, one
run. Benchmarks report ratios; tests never assert timings.

Runs in the CLI process; the reference loop runs in its own spawned child (the only llama_cpp
import is there), the engine in its usual worker.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from desktop.core.loading import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

BENCH_PROMPT = "The history of the printing press begins"
PROMPT_TOKENS = 512
_OPENERS = ("Today", "Yesterday", "Tomorrow", "Meanwhile", "Afterwards", "Finally", "Suddenly")


def _reference(path: str, settings: LoadSettings, tokens: int, repeat: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    from desktop.engine import bench_reference

    proc = ctx.Process(
        target=bench_reference.main,
        args=(child, path, settings, BENCH_PROMPT, _OPENERS, tokens, repeat, PROMPT_TOKENS),
        name="openlid-bench-reference",
    )
    proc.start()
    child.close()
    try:
        result: dict[str, float] = parent.recv()
    except EOFError:
        raise RuntimeError(f"the reference process died (exit {proc.exitcode})") from None
    proc.join()
    return result


def _engine(
    path: str, settings: LoadSettings, tokens: int, repeat: int, capture: bool
) -> dict[str, float]:
    host = EngineHost()
    try:
        load_ms = 0.0
        for event in host.wait(host.load(path, settings)):
            if isinstance(event, P.Loaded):
                load_ms = event.info.load_ms
            else:
                raise RuntimeError(f"engine failed to load: {event}")
        greedy = SamplerSettings(temperature=0.0, max_tokens=tokens, ignore_eos=True, top_n=50)
        best_tps, best_ttft = 0.0, float("inf")
        for run in range(repeat + 1):  # the first run warms caches and is not counted
            # A new first word each run, so the KV cache cannot skip the prompt.
            prompt = ((f"{_OPENERS[run % len(_OPENERS)]} {BENCH_PROMPT}", False),)
            done = None
            for event in host.wait(host.generate(prompt, greedy, capture=capture)):
                if isinstance(event, P.Done):
                    done = event.result
                elif not isinstance(event, P.Step):
                    raise RuntimeError(f"engine failed: {event}")
            assert done is not None
            if run == 0:
                continue
            best_tps = max(best_tps, done.timings.tokens_per_second)
            best_ttft = min(best_ttft, done.timings.first_token_ms)
        return {"tokens_per_second": best_tps, "first_token_ms": best_ttft, "load_ms": load_ms}
    finally:
        host.shutdown()


def run_bench(path: str, settings: LoadSettings, tokens: int, repeat: int) -> dict[str, Any]:
    ref = _reference(path, settings, tokens, repeat)
    off = _engine(path, settings, tokens, repeat, capture=False)
    on = _engine(path, settings, tokens, repeat, capture=True)
    return {
        "model": path,
        "threads": settings.n_threads or "all",
        "tokens": tokens,
        "reference_tokens_per_second": ref["tokens_per_second"],
        "reference_first_token_ms": ref["first_token_ms"],
        "reference_prompt_tokens_per_second": ref["prompt_tokens_per_second"],
        "reference_load_ms": ref["load_ms"],
        "engine_capture_off_tokens_per_second": off["tokens_per_second"],
        "engine_capture_on_tokens_per_second": on["tokens_per_second"],
        "engine_first_token_ms": on["first_token_ms"],
        "engine_load_ms": on["load_ms"],
        "ratio_capture_off_vs_reference": off["tokens_per_second"] / ref["tokens_per_second"],
        "ratio_capture_on_vs_reference": on["tokens_per_second"] / ref["tokens_per_second"],
        "ratio_first_token_vs_reference": on["first_token_ms"] / ref["first_token_ms"],
        "targets": {"ratio_capture_on_vs_reference": ">= 0.95",
                    "ratio_first_token_vs_reference": "<= 1.1"},
    }


def format_report(r: dict[str, Any]) -> str:
    return "\n".join([
        f"model: {r['model']}  threads: {r['threads']}  tokens: {r['tokens']}",
        f"reference (bare llama-cpp-python greedy loop): {r['reference_tokens_per_second']:.1f} "
        f"tok/s, first token {r['reference_first_token_ms']:.1f} ms, load "
        f"{r['reference_load_ms']:.0f} ms",
        f"prompt processing ({PROMPT_TOKENS} tokens): "
        f"{r['reference_prompt_tokens_per_second']:.1f} tok/s",
        f"engine, capture off: {r['engine_capture_off_tokens_per_second']:.1f} tok/s "
        f"(ratio {r['ratio_capture_off_vs_reference']:.3f})",
        f"engine, capture on (top-N 50): {r['engine_capture_on_tokens_per_second']:.1f} tok/s "
        f"(ratio {r['ratio_capture_on_vs_reference']:.3f}, target >= 0.95)",
        f"time to first token: {r['engine_first_token_ms']:.1f} ms "
        f"(ratio {r['ratio_first_token_vs_reference']:.3f}, target <= 1.1)",
        f"engine load: {r['engine_load_ms']:.0f} ms",
    ])
