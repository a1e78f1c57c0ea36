"""`openlid --self-test`: prove that an install (or a PyInstaller bundle) can really run a model.

Checks, in order, and stops at the first failure with the reason in plain words: the bundled
resources are found, the ready Gemma model is present (assembled on first use), the gguf check
accepts it, the engine worker process starts and loads it, and 8 greedy tokens come back with
their per-step distributions. Prints a short report; exit status 0 when all passed, 1 otherwise.

No Qt: it runs in the main thread of a terminal process (also from the windowed bundle, which
is how `packaging/build.sh --check` uses it). Inference goes through EngineHost, so a crash in
llama.cpp ends only the worker and the self-test reports it instead of dying.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TextIO, TypeVar

from desktop import __version__
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import Timings
from desktop.engine import protocol as P

N_TOKENS = 8
PROMPT = "The three primary colours are"
LOAD_TIMEOUT_S = 180.0  # first load of a cold bundle reads 253 MB from disk
GENERATE_TIMEOUT_S = 120.0
T = TypeVar("T")


class SelfTestFailed(Exception):
    """One check failed; the message says which and why."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _check(report: Callable[[str], None], label: str, action: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        result = action()
    except SelfTestFailed:
        raise
    except Exception as exc:
        raise SelfTestFailed(f"{label}: {type(exc).__name__}: {exc}") from exc
    report(f"  ok  {label} ({(time.perf_counter() - started) * 1000:.0f} ms)")
    return result


def _resources() -> Path:
    from desktop.core.resources import resource_path

    icon = resource_path("icons", "openlid.svg")
    if not icon.is_file():
        raise SelfTestFailed(f"resources: the icon {icon} is missing")
    return icon.parent.parent


def _ready_model(models_dir: Path | None) -> Path:
    from desktop.core.ready_model import ready_model_path

    return ready_model_path(models_dir)


def _gguf(path: Path) -> str:
    from desktop.core.gguf_file.check import check_gguf

    report = check_gguf(path)
    return f"{report.architecture}, {report.quant}"


def run_self_test(
    out: TextIO | None = None,
    *,
    models_dir: Path | None = None,
    log_dir: Path | None = None,
    n_threads: int = 0,
) -> int:
    """Run every check, print the report to `out` (stdout), return the exit status."""
    stream = out if out is not None else sys.stdout

    def report(line: str) -> None:
        if stream is not None:  # a windowed Windows build has no stdout: the status says it
            print(line, file=stream, flush=True)

    report(f"Openlid {__version__} self-test")
    report(f"  llama-cpp-python {_version('llama-cpp-python')}, Python {sys.version.split()[0]}, "
           f"{'bundle' if getattr(sys, 'frozen', False) else 'installed'} on {sys.platform}")
    from desktop.engine.fused_scan import capture_pass

    report(f"  capture's pass over the scores: {capture_pass()}")
    try:
        text = _run_checks(report, models_dir, log_dir, n_threads)
    except SelfTestFailed as exc:
        report(f"FAILED {exc}")
        return 1
    report(f"PASSED: {text!r}")
    return 0


def _run_checks(
    report: Callable[[str], None], models_dir: Path | None, log_dir: Path | None, n_threads: int
) -> str:
    from desktop.core import paths
    from desktop.engine.host import EngineHost

    root = _check(report, "resources found", _resources)
    report(f"      {root}")
    model = _check(report, "ready model present", lambda: _ready_model(models_dir))
    report(f"      {model}")
    kind = _check(report, "GGUF file valid", lambda: _gguf(model))
    report(f"      {kind}")

    host = EngineHost(log_dir=log_dir or paths.log_dir())
    try:
        def load() -> P.Loaded:
            settings = LoadSettings(n_ctx=512, n_threads=n_threads)
            events = list(host.wait(host.load(model, settings), timeout=LOAD_TIMEOUT_S))
            last = events[-1] if events else None
            if not isinstance(last, P.Loaded):
                raise SelfTestFailed(f"loading the model: {_describe(last)}")
            return last

        loaded = _check(report, "engine started and model loaded", load)
        info = loaded.info
        report(f"      {info.name or info.architecture}, backend {info.backend}, "
               f"{info.n_layers_offloaded} layers offloaded, load {info.load_ms:.0f} ms")

        def generate() -> tuple[list[P.Step], P.Done]:
            settings = SamplerSettings(
                temperature=0.0, max_tokens=N_TOKENS, ignore_eos=True, seed=1234, top_n=10
            )
            steps: list[P.Step] = []
            request = host.generate(((PROMPT, False),), settings)
            for event in host.wait(request, timeout=GENERATE_TIMEOUT_S):
                if isinstance(event, P.Step):
                    steps.append(event)
                elif isinstance(event, P.Done):
                    return steps, event
                else:
                    raise SelfTestFailed(f"generating: {_describe(event)}")
            raise SelfTestFailed("generating: the engine stopped answering")

        steps, done = _check(report, f"{N_TOKENS} greedy tokens generated", generate)
        _check_steps(steps)
        timings = done.result.timings
        report(f"      {len(steps)} steps, every one greedy with its distribution; "
               f"{_per_second(timings)}")
        return done.result.text
    finally:
        host.shutdown()


def _check_steps(steps: list[P.Step]) -> None:
    if len(steps) != N_TOKENS:
        raise SelfTestFailed(f"generating: expected {N_TOKENS} steps, got {len(steps)}")
    for event in steps:
        record = event.record
        if not record.stages:
            raise SelfTestFailed(f"step {record.step}: no sampler stages were captured")
        if record.raw_rank != 1:
            # Temperature 0 must take the most likely token; anything else means the chain broke.
            raise SelfTestFailed(
                f"step {record.step}: greedy picked rank {record.raw_rank}, not the top token"
            )
        if not 0.0 < record.raw_prob <= 1.0:
            raise SelfTestFailed(f"step {record.step}: probability {record.raw_prob} is invalid")


def _per_second(timings: Timings) -> str:
    rate = timings.tokens_per_second
    return f"{rate:.1f} tokens/s after the first" if rate > 0 else "rate not measured"


def _describe(event: object) -> str:
    if isinstance(event, P.EngineError):
        return f"{event.kind}: {event.message}"
    if isinstance(event, P.Crashed):
        tail = f" ({event.telling_line})" if event.telling_line else ""
        return f"{event.reason}{tail}; engine log: {event.log_path}"
    return f"unexpected answer {event!r}"
