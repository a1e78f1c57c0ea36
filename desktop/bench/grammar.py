"""`openlid bench --structured`: tokens/s with a JSON schema (and with "any JSON") against
without, same model, same threads, one run. Benchmarks report ratios; tests never assert timings.

Runs in the CLI process, over one engine worker. The runs are interleaved round by round (the
order turning each round) and the best round of each side counts, so a neighbour's load on a
shared machine hits every side alike. Each run is greedy from the same prompt. Unconstrained,
the run ignores end-of-text and makes exactly `tokens` tokens; held by a grammar it ends where
the JSON ends (or at `tokens`), so each side reports its own token count and its own rate, and
the ratio compares rates — the grammar stage's cost per token, captured as the chart shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from desktop.bench.draft import _final, _load_average
from desktop.bench.engine import BenchError
from desktop.core.hardware import default_threads
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

PROMPT = (
    "A JSON record of a library book, with its title, author, year, a list of tags and "
    "a long summary:\n"
)
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "author": {"type": "string"},
        "year": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
    "required": ["title", "author", "year", "tags", "summary"],
}
NONE, JSON, SCHEMA_SIDE = "none", "json", "json_schema"
WARMUP_TOKENS = 8


def _settings(side: str, tokens: int) -> SamplerSettings:
    base = SamplerSettings(temperature=0.0, seed=1, max_tokens=tokens)
    if side == NONE:
        return base.replace(ignore_eos=True)
    if side == JSON:
        return base.replace(structured_output="json")
    return base.replace(structured_output="json_schema", json_schema=json.dumps(SCHEMA))


def run_grammar_bench(
    model: str,
    load: LoadSettings,
    tokens: int,
    repeat: int,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """The report: each side's best tokens/s, its tokens, and its ratio to unconstrained."""
    sides = [NONE, JSON, SCHEMA_SIDE]
    report: dict[str, Any] = {
        "model": model,
        "threads": load.n_threads or default_threads(),
        "tokens": tokens,
        "rounds": repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": _load_average(),
        "sides": {},
    }
    host = EngineHost()
    try:
        progress(f"loading {model}")
        loaded = _final(host, host.load(model, load))
        if not isinstance(loaded, P.Loaded):
            raise BenchError(f"the engine did not load the model: {loaded!r}")
        best: dict[str, GenerationDone] = {}
        for round_ in range(repeat + 1):
            n = WARMUP_TOKENS if round_ == 0 else tokens
            for side in sides[round_ % len(sides) :] + sides[: round_ % len(sides)]:
                done = _final(
                    host, host.generate(((PROMPT, False),), _settings(side, n), capture=True)
                ).result
                if round_ == 0:
                    continue
                kept = best.get(side)
                if kept is None or (
                    done.timings.tokens_per_second > kept.timings.tokens_per_second
                ):
                    best[side] = done
            if round_:
                progress(f"round {round_}/{repeat} done")
    finally:
        host.shutdown()
    base = best[NONE].timings.tokens_per_second
    for side in sides:
        done = best[side]
        tps = done.timings.tokens_per_second
        row: dict[str, Any] = {
            "tokens_per_second": round(tps, 2),
            "tokens": done.usage.completion_tokens,
            "finish_reason": done.finish_reason,
        }
        if side != NONE:
            row["ratio"] = round(tps / base, 3) if base else None
            row["parses"] = _parses(done.text)
        report["sides"][side] = row
    report["load_average_after"] = _load_average()
    return report


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def format_grammar_report(report: dict[str, Any]) -> str:
    lines = [
        f"structured output: {report['model']}",
        f"{report['machine']}, {report['threads']} threads, up to {report['tokens']} "
        f"tokens, best of {report['rounds']} rounds",
        f"load average before {report['load_average_before']}, "
        f"after {report['load_average_after']}",
    ]
    labels = {NONE: "without", JSON: "any JSON", SCHEMA_SIDE: "JSON schema"}
    for side, row in report["sides"].items():
        line = (
            f"  {labels[side]:12} {row['tokens_per_second']:8.2f} tok/s  "
            f"({row['tokens']} tokens, {row['finish_reason']})"
        )
        if "ratio" in row:
            line += (
                f"  ×{row['ratio']:.2f} of without, "
                f"{'valid JSON' if row['parses'] else 'cut short before the JSON ended'}"
            )
        lines.append(line)
    return "\n".join(lines)


def cmd_grammar_bench(args: argparse.Namespace, model: str, load: LoadSettings) -> int:
    """`openlid bench --structured` (exit codes as cli.main's)."""
    try:
        report = run_grammar_bench(
            model,
            load,
            args.tokens,
            args.repeat,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except BenchError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return 2 if exc.bad_input else 1
    print(json.dumps(report, indent=2) if args.json else format_grammar_report(report))
    return 0
