"""`openlid compare`: one prompt under two or more setting sets, on one engine, with one seed.

Runs in the main thread of a terminal process; the model runs in the engine worker through
`EngineHost`. `run_compare` is the engine-level runner over the pure `core.compare.CompareJob`:
the runs are generated one after the other on the same engine (sample i of every set with seed
base + i), each with its stages captured. The verb prints the transcripts side by side (or one
after the other when the terminal is narrow) with the first divergent step marked and, with
`--samples`, each set's statistics (`cli.compare_text`); `--json` prints the whole report.
Ctrl+C stops the comparison and prints what it has.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from desktop.cli.args import add_model_args
from desktop.core.compare import MAX_SAMPLES, CompareJob, CompareReport, Sample
from desktop.core.compare_sets import describe, parse_set
from desktop.core.model_info import LoadSettings
from desktop.core.sampler_stages import RANDOM_SEED
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_MAX_TOKENS = 32
DEFAULT_TOP_N = 20  # candidates per stage kept: enough to overlay two distributions
CANCEL_DRAIN_S = 10.0  # after Ctrl+C, how long to wait for the engine to confirm the stop


def add_compare_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compare", help="one prompt under two or more setting sets, same seed: transcripts "
        "side by side, where they diverge, and what the settings do to variety",
        description="Generate one prompt under each --set in turn, on the same engine with the "
        "same seed (sample i of every set uses seed S + i). Each set starts from Openlid's "
        f"defaults ({describe(SamplerSettings())}) and changes what it names.")
    add_model_args(p)
    p.add_argument("--prompt", required=True, help="the text to continue (no template)")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="SPEC",
                   help='a setting set, e.g. "temperature=0.2,top_p=0.9" (give two or more)')
    p.add_argument("--samples", type=int, default=1,
                   help=f"generations per set, 1 to {MAX_SAMPLES} (default 1)")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"tokens per generation (default {DEFAULT_MAX_TOKENS})")
    p.add_argument("--seed", type=int, default=None,
                   help="the base seed (default: a random one, printed)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--top-n", type=int, default=DEFAULT_TOP_N,
                   help=f"candidates kept per stage (default {DEFAULT_TOP_N})")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")


def job_from_args(args: argparse.Namespace) -> CompareJob:
    """The comparison the flags describe; SettingsError (in words) when they do not add up."""
    base = SamplerSettings(max_tokens=args.max_tokens, top_n=args.top_n,
                           stop=tuple(args.stop)).validated()
    if len(args.sets) < 2:
        raise SettingsError('compare needs two or more --set, e.g. --set "temperature=0.2" '
                            '--set "temperature=1.5"')
    sets = tuple(parse_set(spec, base) for spec in args.sets)
    seed = random.randrange(RANDOM_SEED) if args.seed is None else args.seed
    return CompareJob(args.prompt, sets, samples_per_set=args.samples, seed=seed, base=base)


def _words(event: P.EngineEvent) -> str:
    if isinstance(event, P.EngineError):
        return event.message
    if isinstance(event, P.Crashed):
        return event.reason
    return f"unexpected engine event {event!r}"


def run_compare(host: EngineHost, job: CompareJob, *, timeout: float | None = None,
                on_sample: Callable[[Sample], None] | None = None,
                ) -> tuple[CompareReport, P.EngineEvent | None]:
    """Generate every run of `job` on `host` (a loaded model), one after the other.

    Returns the report and, when the engine refused or died, the event that ended it (the report
    then holds the samples finished before). Ctrl+C asks the engine to stop and returns what was
    finished, the stopped run included, with the report marked cancelled."""
    pieces: P.PromptPieces = ((job.prompt, False),)
    while (run := job.start_next()) is not None:
        request = host.generate(pieces, run.settings, capture=True)
        try:
            failure = _collect(host, job, request, timeout, on_sample)
        except KeyboardInterrupt:
            host.cancel()
            job.cancel()
            with contextlib.suppress(TimeoutError, KeyboardInterrupt):
                _collect(host, job, request, CANCEL_DRAIN_S, on_sample)
            return job.report(), None
        if failure is not None:
            job.fail(_words(failure))
            return job.report(), failure
    return job.report(), None


def _collect(host: EngineHost, job: CompareJob, request: int, timeout: float | None,
             on_sample: Callable[[Sample], None] | None) -> P.EngineEvent | None:
    for event in host.wait(request, timeout=timeout):
        if isinstance(event, P.Step):
            job.add_step(event.record)
        elif isinstance(event, P.Done):
            sample = job.finish(event.result)
            if sample is not None and on_sample is not None:
                on_sample(sample)
            return None
        else:
            return event
    return None


def cmd_compare(args: argparse.Namespace, model: Path, load: LoadSettings,
                report_failure: Callable[[object], int]) -> int:
    """The verb: load the model, run the comparison, print it."""
    from desktop.cli.compare_text import format_report

    job = job_from_args(args)  # bad flags fail before a model loads
    host = EngineHost()
    try:
        for event in host.wait(host.load(model, load)):
            if not isinstance(event, P.Loaded):
                return report_failure(event)
        total = len(job.runs)

        def progress(sample: Sample) -> None:
            if not args.json and total > len(job.sets):
                done, _ = job.progress
                print(f"\r{done}/{total} generations", end="", file=sys.stderr, flush=True)

        report, failure = run_compare(host, job, on_sample=progress)
        if not args.json and total > len(job.sets):
            print(file=sys.stderr)
        if args.json:
            print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        else:
            print(format_report(report, shutil.get_terminal_size((100, 24)).columns))
        if failure is not None:
            return report_failure(failure)
        return 130 if report.cancelled else EXIT_OK
    finally:
        host.shutdown()
