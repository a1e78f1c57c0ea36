"""`openlid bench`: the engine against a bare llama-cpp-python loop, same model, same threads, one
run. Benchmarks report ratios; tests never assert timings.

Runs in the CLI process. The reference loop lives in its own spawned child (the only llama_cpp
import is there), the engine in its usual worker; both stay loaded and their runs are interleaved
round by round (reference, capture off, capture on), and the best round of each counts, so a
neighbour's load on a shared machine hits all three alike.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

BENCH_PROMPT = "The history of the printing press begins"
PROMPT_TOKENS = 512
# A new first word each round, so the KV cache cannot skip the prompt.
_OPENERS = ("Today", "Yesterday", "Tomorrow", "Meanwhile", "Afterwards", "Finally", "Suddenly")


class _Reference:
    def __init__(self, path: str, settings: LoadSettings) -> None:
        from desktop.bench import reference

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=reference.main, args=(child, path, settings),
                                name="openlid-bench-reference", daemon=True)
        self.proc.start()
        child.close()
        self.load_ms = float(self._recv()["load_ms"])

    def _recv(self) -> dict[str, float]:
        try:
            result: dict[str, float] = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"the reference process died (exit {self.proc.exitcode})") from None
        return result

    def ask(self, command: str, text: str, n: int) -> dict[str, float]:
        self.conn.send((command, text, n))
        return self._recv()

    def close(self) -> None:
        self.conn.send(("quit", "", 0))
        self.proc.join(10)


def _engine_run(host: EngineHost, text: str, tokens: int, capture: bool) -> dict[str, float]:
    greedy = SamplerSettings(temperature=0.0, max_tokens=tokens, ignore_eos=True, top_n=50)
    for event in host.wait(host.generate(((text, False),), greedy, capture=capture)):
        if isinstance(event, P.Done):
            return {"tokens_per_second": event.result.timings.tokens_per_second,
                    "first_token_ms": event.result.timings.first_token_ms}
        if not isinstance(event, P.Step):
            raise RuntimeError(f"engine failed: {event}")
    raise RuntimeError("engine ended without an answer")


def run_bench(path: str, settings: LoadSettings, tokens: int, repeat: int) -> dict[str, Any]:
    ref = _Reference(path, settings)
    host = EngineHost()
    try:
        loaded = list(host.wait(host.load(path, settings)))[-1]
        if not isinstance(loaded, P.Loaded):
            raise RuntimeError(f"engine failed to load: {loaded}")
        best: dict[str, dict[str, float]] = {}
        for rnd in range(repeat + 1):  # round 0 warms caches and is not counted
            text = f"{_OPENERS[rnd % len(_OPENERS)]} {BENCH_PROMPT}"
            runs = {
                "reference": ref.ask("generate", text, tokens),
                "capture_off": _engine_run(host, text, tokens, capture=False),
                "capture_on": _engine_run(host, text, tokens, capture=True),
            }
            if rnd == 0:
                continue
            for name, r in runs.items():
                b = best.setdefault(name, {"tokens_per_second": 0.0,
                                           "first_token_ms": float("inf")})
                b["tokens_per_second"] = max(b["tokens_per_second"], r["tokens_per_second"])
                b["first_token_ms"] = min(b["first_token_ms"], r["first_token_ms"])
        prefill = max(ref.ask("prefill", BENCH_PROMPT, PROMPT_TOKENS)["prompt_tokens_per_second"]
                      for _ in range(max(1, repeat)))
    finally:
        host.shutdown()
        ref.close()
    r, off, on = best["reference"], best["capture_off"], best["capture_on"]
    return {
        "model": path,
        "threads": settings.n_threads or "all",
        "tokens": tokens,
        "rounds": repeat,
        "reference_tokens_per_second": r["tokens_per_second"],
        "reference_first_token_ms": r["first_token_ms"],
        "reference_prompt_tokens_per_second": prefill,
        "reference_load_ms": ref.load_ms,
        "engine_capture_off_tokens_per_second": off["tokens_per_second"],
        "engine_capture_on_tokens_per_second": on["tokens_per_second"],
        "engine_first_token_ms": on["first_token_ms"],
        "engine_load_ms": loaded.info.load_ms,
        "ratio_capture_off_vs_reference": off["tokens_per_second"] / r["tokens_per_second"],
        "ratio_capture_on_vs_reference": on["tokens_per_second"] / r["tokens_per_second"],
        "ratio_first_token_vs_reference": on["first_token_ms"] / r["first_token_ms"],
        "targets": {"ratio_capture_on_vs_reference": ">= 0.95",
                    "ratio_first_token_vs_reference": "<= 1.1"},
    }


def format_report(r: dict[str, Any]) -> str:
    return "\n".join([
        f"model: {r['model']}  threads: {r['threads']}  tokens: {r['tokens']}  "
        f"rounds: {r['rounds']} (interleaved, best of each)",
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
