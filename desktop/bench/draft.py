"""`openlid bench --draft`: tokens/s with and without speculative decoding, same model, same
threads, one run. Benchmarks report ratios; tests never assert timings.

Runs in the CLI process. One engine worker per configuration (no draft, n-gram drafting, and the
draft model when `--draft-model` names one) stays loaded, and their runs are interleaved prompt
by prompt and round by round (the order turning each round); the best round of each counts, so
a neighbour's load on a shared machine hits every side alike. Each run is greedy and ignores
end-of-text, so every side makes the same number of tokens, and the report says whether each
draft's text was the text without it: every token is the model's own draw, but llama.cpp
computes a batch's logits a little differently from one token's, and on a quantized model a
near-tie can fall the other way. Two prompts: one whose reply copies the prompt (where n-gram
lookup shines) and free prose.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from desktop.bench.engine import BenchError
from desktop.core.drafting import DRAFT_MODEL, DRAFT_NGRAM, DRAFT_NONE
from desktop.core.hardware import default_threads
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

PROMPTS = {
    "copying": ("Copy the list exactly.\nList: apple, banana, cherry, date, elderberry, fig, "
                "grape, honeydew, kiwi, lemon, mango, nectarine, orange, papaya, quince, "
                "raspberry, strawberry, tangerine, ugli fruit, vanilla, watermelon.\n"
                "Copy: apple, banana,"),
    "prose": "The history of the printing press begins",
}
WARMUP_TOKENS = 8
_TIMEOUT = 600.0


def _configs(load: LoadSettings) -> dict[str, LoadSettings]:
    configs = {DRAFT_NONE: load.replace(draft=DRAFT_NONE),
               DRAFT_NGRAM: load.replace(draft=DRAFT_NGRAM)}
    if load.draft_model:
        configs[DRAFT_MODEL] = load.replace(draft=DRAFT_MODEL)
    return configs


def _final(host: EngineHost, request_id: int) -> Any:
    event: Any = None
    for event in host.wait(request_id, timeout=_TIMEOUT):
        if isinstance(event, P.EngineError):
            bad = event.kind in ("invalid_model", "load_failed", "context_overflow")
            raise BenchError(f"the engine refused: {event.message}", bad_input=bad)
        if isinstance(event, P.Crashed):
            raise BenchError(f"the engine stopped: {event.reason} {event.telling_line}")
    return event


def run_draft_bench(model: str, load: LoadSettings, tokens: int, repeat: int,
                    progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    configs = _configs(load)
    hosts: dict[str, EngineHost] = {}
    report: dict[str, Any] = {
        "model": model, "threads": load.n_threads or default_threads(), "tokens": tokens,
        "rounds": repeat, "n_draft": load.n_draft, "draft_model": load.draft_model or None,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": _load_average(), "prompts": {},
    }
    try:
        for name, settings in configs.items():
            progress(f"loading {model} ({name})")
            hosts[name] = EngineHost()
            loaded = _final(hosts[name], hosts[name].load(model, settings))
            assert isinstance(loaded, P.Loaded), loaded
        best: dict[tuple[str, str], GenerationDone] = {}
        texts: dict[tuple[str, str], set[str]] = {}
        names = list(configs)
        for round_ in range(repeat + 1):
            n = WARMUP_TOKENS if round_ == 0 else tokens
            sampler = SamplerSettings(temperature=0.0, seed=1, max_tokens=n, ignore_eos=True)
            order = names[round_ % len(names):] + names[: round_ % len(names)]
            for prompt_name, text in PROMPTS.items():
                for name in order:
                    host = hosts[name]
                    done = _final(host, host.generate(((text, False),), sampler,
                                                      capture=True)).result
                    if round_ == 0:
                        continue
                    key = (prompt_name, name)
                    texts.setdefault(key, set()).add(done.text)
                    kept = best.get(key)
                    if kept is None or (done.timings.tokens_per_second
                                        > kept.timings.tokens_per_second):
                        best[key] = done
            if round_:
                progress(f"round {round_}/{repeat} done")
        for prompt_name in PROMPTS:
            report["prompts"][prompt_name] = _prompt_rows(prompt_name, names, best, texts)
    finally:
        for host in hosts.values():
            host.shutdown()
    report["load_average_after"] = _load_average()
    return report


def _prompt_rows(prompt_name: str, names: list[str],
                 best: dict[tuple[str, str], GenerationDone],
                 texts: dict[tuple[str, str], set[str]]) -> dict[str, Any]:
    base = best[(prompt_name, DRAFT_NONE)].timings.tokens_per_second
    rows: dict[str, Any] = {}
    for name in names:
        done = best[(prompt_name, name)]
        tps = done.timings.tokens_per_second
        row: dict[str, Any] = {"tokens_per_second": round(tps, 2)}
        if done.draft is not None:
            row.update(speedup=round(tps / base, 3) if base else None,
                       proposed=done.draft.proposed, accepted=done.draft.accepted,
                       acceptance=round(done.draft.rate, 3), passes=done.draft.passes,
                       same_text=texts[(prompt_name, name)] == texts[(prompt_name, DRAFT_NONE)])
        rows[name] = row
    return rows


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def format_draft_report(report: dict[str, Any]) -> str:
    lines = [f"speculative decoding: {report['model']}",
             f"{report['machine']}, {report['threads']} threads, {report['tokens']} tokens, "
             f"best of {report['rounds']} rounds, up to {report['n_draft']} draft tokens a pass",
             f"load average before {report['load_average_before']}, "
             f"after {report['load_average_after']}"]
    for prompt_name, rows in report["prompts"].items():
        lines.append(f"\n{prompt_name}")
        for name, row in rows.items():
            line = f"  {name:6} {row['tokens_per_second']:8.2f} tok/s"
            if "speedup" in row:
                line += (f"  ×{row['speedup']:.2f}  accepted {row['accepted']}/{row['proposed']}"
                         f" ({100 * row['acceptance']:.0f}%) in {row['passes']} passes, "
                         f"{'same text' if row['same_text'] else 'OTHER TEXT'} as without")
            lines.append(line)
    return "\n".join(lines)


def cmd_draft_bench(args: argparse.Namespace, model: str, load: LoadSettings) -> int:
    """`openlid bench --draft` (exit codes as cli.main's)."""
    try:
        report = run_draft_bench(model, load, args.tokens, args.repeat,
                                 progress=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return 2 if exc.bad_input else 1
    print(json.dumps(report, indent=2) if args.json else format_draft_report(report))
    return 0
