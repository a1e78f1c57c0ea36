"""`openlid bench`: the engine against a bare llama-cpp-python loop, chain by chain, same model,
same threads, one run. Benchmarks report ratios; tests never assert timings.

Runs in the CLI process. The reference loop lives in its own spawned child
(`engine.reference_loop`; this package never imports llama_cpp), the engine in its usual
worker; both stay loaded, and their runs are interleaved chain by chain and round by round
(the order of the sides turns each round), and the best round of each counts, so a neighbour's
load on a shared machine hits every side alike.

Every run gets a prompt no run has seen (chains.Prompts), so time to first token includes the
prompt on both sides; the report says how many prompt tokens each side found in its KV cache.
Prompt processing is measured on both sides over 512 tokens, and a replay of a step at a
900-token context on the engine, the way the window replays one (its cache holds the reply).
Where llama.cpp's own `llama-bench` is at hand (`bench.llama_bench`) it runs once a round too,
with the engine's load settings: the decode ceiling each chain's capture-on rate is held to.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from desktop.bench import llama_bench as lb
from desktop.bench.chains import (
    CHEAP_TARGET,
    PROMPT,
    PROMPT_TOKENS,
    REPLAY_CONTEXT,
    Chain,
    Prompts,
    bench_chains,
)
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

SIDES = ("reference", "capture_off", "capture_on")
_FLUSH = SamplerSettings(temperature=0.0, max_tokens=1)  # replaces the engine's KV cache
REPLAY_TARGET_MS = 100.0
LLAMA_BENCH_TARGET = 0.95  # decode with capture ÷ llama-bench's tg, the cheap chains
WARMUP_TOKENS = 8  # round 0 only warms caches, allocators and imports, and is not counted
LONG_TEXT = " ".join([PROMPT] * 400)  # far more than REPLAY_CONTEXT tokens on any tokenizer
_TIMEOUT = 600.0  # one run; a dead worker ends the wait at once (Crashed)


class BenchError(RuntimeError):
    """The bench could not run; the message says why in plain words."""

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


class _Reference:
    def __init__(self, path: str, settings: LoadSettings) -> None:
        from desktop.engine import reference_loop as reference

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=reference.main, args=(child, path, settings),
                                name="openlid-bench-reference", daemon=True)
        self.proc.start()
        child.close()
        self.load_ms = float(self._recv()["load_ms"])

    def _recv(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self.conn.recv()
        except EOFError:
            raise BenchError(
                f"the reference process died (exit {self.proc.exitcode})") from None
        if "error" in result:
            raise BenchError(f"the reference loop failed: {result['error']}")
        return result

    def ask(self, command: str, **payload: Any) -> dict[str, Any]:
        self.conn.send((command, payload))
        return self._recv()

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send(("quit", {}))
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class _Engine:
    """The engine worker, with the few requests the bench makes, each waited for."""

    def __init__(self) -> None:
        self.host = EngineHost()
        self.last_tokens: tuple[int, ...] = ()
        self.last_sample_ms = 0.0  # the mean of the last reply's steps after the first

    def _final(self, request_id: int) -> Any:
        event: Any = None
        self.last_tokens = ()
        sampled: list[int] = []
        sample_ms: list[float] = []  # each step's sampling (and capture), as the engine timed it
        for event in self.host.wait(request_id, timeout=_TIMEOUT):
            if isinstance(event, P.Step):
                sampled.append(event.record.token_id)
                sample_ms.append(event.record.sample_ms)
                continue
            if isinstance(event, P.Done):
                self.last_tokens = tuple(sampled)
                later = sample_ms[1:]  # as tokens/s, the steps after the first
                self.last_sample_ms = sum(later) / len(later) if later else 0.0
            if isinstance(event, P.EngineError):
                bad = event.kind in ("invalid_model", "load_failed", "context_overflow")
                raise BenchError(f"the engine refused: {event.message}", bad_input=bad)
            if isinstance(event, P.Crashed):
                raise BenchError(f"the engine stopped: {event.reason} {event.telling_line}")
        return event

    def load(self, path: str, settings: LoadSettings) -> ModelInfo:
        loaded = self._final(self.host.load(path, settings))
        assert isinstance(loaded, P.Loaded), loaded
        return loaded.info

    def tokenize(self, text: str) -> tuple[int, ...]:
        tokenized = self._final(self.host.tokenize(((text, False),), add_bos=True))
        assert isinstance(tokenized, P.Tokenized), tokenized
        return tokenized.tokens

    def generate(self, settings: SamplerSettings, *, text: str = "",
                 tokens: tuple[int, ...] = (), capture: bool) -> P.Done:
        """The run's Done; `last_tokens` holds the tokens it sampled."""
        prompt = ((text, False),) if text else ()
        done = self._final(self.host.generate(prompt, settings, prompt_tokens=tokens,
                                              capture=capture))
        assert isinstance(done, P.Done), done
        return done

    def replay_ms(self, context: tuple[int, ...], token: int, settings: SamplerSettings) -> float:
        """Wall time of one replay, request to answer, as the window waits for it."""
        started = time.perf_counter()
        replayed = self._final(self.host.replay(context, token, 1, settings, len(context) - 1))
        assert isinstance(replayed, P.Replayed), replayed
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.host.shutdown()


class _Best:
    """The best figure of each (row, side) over the counted rounds, and each round's tokens/s
    (for the ratios paired by round: the sides of a round got the same prompt, back to back)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], dict[str, float]] = {}
        self.by_round: dict[tuple[str, str], list[float]] = {}
        self.reused: dict[str, int] = {"reference": 0, "engine": 0}
        self.same: dict[str, bool] = {}

    def add(self, row: str, side: str, **figures: float) -> None:
        if "tokens_per_second" in figures:
            self.by_round.setdefault((row, side), []).append(figures["tokens_per_second"])
        best = self.values.setdefault((row, side), {})
        for key, value in figures.items():
            lower_is_better = key.endswith("_ms")
            old = best.get(key)
            if old is None or (value < old if lower_is_better else value > old):
                best[key] = value

    def sampled(self, row: str, tokens: dict[str, tuple[int, ...]]) -> None:
        """Whether every side sampled the same tokens, in every counted round."""
        same = len(set(tokens.values())) == 1
        self.same[row] = self.same.get(row, True) and same

    def seen_reuse(self, side: str, reused: int) -> None:
        self.reused[side] = max(self.reused[side], reused)

    def get(self, row: str, side: str, key: str) -> float:
        return self.values[(row, side)][key]

    def paired(self, row: str, side: str, other_row: str, other_side: str) -> list[float]:
        """(row, side)'s tokens/s ÷ (other_row, other_side)'s, round by round."""
        mine = self.by_round.get((row, side), [])
        theirs = self.by_round.get((other_row, other_side), [])
        return [a / b for a, b in zip(mine, theirs, strict=False) if b > 0]


def _check_args(tokens: int, repeat: int) -> None:
    if tokens < 2:
        raise BenchError("--tokens must be at least 2 (tokens/s counts the tokens after the "
                         "first)", bad_input=True)
    if repeat < 1:
        raise BenchError("--repeat must be at least 1", bad_input=True)


def run_bench(path: str, settings: LoadSettings, tokens: int, repeat: int,
              progress: Callable[[str], None] | None = None,
              only: tuple[str, ...] = (), llama_bench: str | None = None) -> dict[str, Any]:
    """`only`: the names of the chains to run (all of them when empty). `llama_bench`: the
    llama-bench binary to run alongside (default: $OPENLID_LLAMA_BENCH or the checkout's
    build, skipped when there is none)."""
    _check_args(tokens, repeat)
    try:
        binary = lb.find_binary(llama_bench)
    except lb.LlamaBenchError as exc:
        raise BenchError(str(exc), bad_input=True) from None
    say = progress or (lambda _message: None)
    chains = bench_chains()
    unknown = sorted(set(only) - {c.name for c in chains})
    if unknown:
        raise BenchError(f"no such chain: {', '.join(unknown)} (the chains: "
                         f"{', '.join(c.name for c in chains)})", bad_input=True)
    if only:
        chains = tuple(c for c in chains if c.name in only)
    loads = [os.getloadavg()[0]]  # the 1-minute load average, sampled after every chain
    engine = _Engine()
    ref: _Reference | None = None
    best = _Best()
    prompts = Prompts()
    ceiling: dict[str, Any] = {"missing": lb.HOW_TO_GET}
    try:
        say("loading the model in the engine and in the reference loop")
        info = engine.load(path, settings)  # first: its file check words a bad model best
        if info.n_ctx < REPLAY_CONTEXT + 8:
            raise BenchError(f"the bench needs a context of at least {REPLAY_CONTEXT + 8} tokens "
                             f"(this one holds {info.n_ctx}); pass --ctx 1024 or more",
                             bad_input=True)
        ref = _Reference(path, settings)
        ref_load_ms = ref.load_ms
        bench = lb.llama_bench(binary, path, settings, info, tokens) if binary else None
        if bench is not None:
            ceiling = {"command": bench.command(), "depth": lb.DEPTH, "error": ""}
        for rnd in range(repeat + 1):
            n = tokens if rnd else min(tokens, WARMUP_TOKENS)
            say(f"round {rnd} of {repeat}" + (" (warm-up, not counted)" if not rnd else ""))
            for chain in chains:
                _chain_round(engine, ref, chain, n, rnd, prompts, best if rnd else None)
                loads.append(os.getloadavg()[0])
            if bench is not None and rnd and not ceiling["error"]:
                try:  # llama-bench warms up by itself, so it runs in counted rounds only
                    best.add("llama_bench", "llama_bench", tokens_per_second=bench.run())
                except lb.LlamaBenchError as exc:
                    ceiling["error"] = str(exc)  # reported; the engine's rows still count
            _prefill_round(engine, ref, rnd, prompts, best if rnd else None)
            _replay_round(engine, chains, prompts, best if rnd else None)
    finally:
        engine.close()
        if ref is not None:
            ref.close()
    loads.append(os.getloadavg()[0])
    return _report(path, settings, tokens, repeat, chains, best, info, ref_load_ms, loads,
                   ceiling)


def _chain_round(engine: _Engine, ref: _Reference, chain: Chain, n: int, rnd: int,
                 prompts: Prompts, best: _Best | None) -> None:
    """Every side generates from the same new prompt, so with the same chain and seed every
    side samples the same text (a chain whose cost depends on the text, DRY's on its repeats,
    then costs the same work on each side). The reference's cache is its own; between the
    engine's two runs a one-token generation from another prompt replaces the engine's cache,
    so neither finds more than BOS there."""
    st = chain.settings.replace(max_tokens=n)
    text = prompts.next()
    sides = SIDES[rnd % 3:] + SIDES[: rnd % 3]  # who goes first turns every round
    engine_ran = False
    sampled: dict[str, tuple[int, ...]] = {}
    for side in sides:
        if side == "reference":
            r = ref.ask("generate", text=text, tokens=n, settings=st)
            tps, ttft, reused = r["tokens_per_second"], r["first_token_ms"], r["reused_tokens"]
            sample_ms = r["sample_ms"]
            sampled[side] = tuple(r["tokens"])
        else:
            if engine_ran:
                engine.generate(_FLUSH, text=prompts.next(), capture=False)
            engine_ran = True
            done = engine.generate(st, text=text, capture=side == "capture_on")
            timings = done.result.timings
            tps, ttft = timings.tokens_per_second, timings.first_token_ms
            reused = done.result.usage.cached_tokens
            sampled[side] = engine.last_tokens
            sample_ms = engine.last_sample_ms
        if best is not None:
            best.add(chain.name, side, tokens_per_second=tps, first_token_ms=ttft,
                     sample_ms=sample_ms)
            best.seen_reuse("reference" if side == "reference" else "engine", int(reused))
    if best is not None:
        best.sampled(chain.name, sampled)


def _prefill_round(engine: _Engine, ref: _Reference, rnd: int, prompts: Prompts,
                   best: _Best | None) -> None:
    for side in ("reference", "engine") if rnd % 2 else ("engine", "reference"):
        if side == "reference":
            r = ref.ask("prefill", text=prompts.next(LONG_TEXT), n_tokens=PROMPT_TOKENS)
            tps, reused = r["prompt_tokens_per_second"], int(r["reused_tokens"])
        else:
            toks = engine.tokenize(prompts.next(LONG_TEXT))[:PROMPT_TOKENS]
            one = SamplerSettings(temperature=0.0, max_tokens=1)
            done = engine.generate(one, tokens=toks, capture=False)
            reused = done.result.usage.cached_tokens
            tps = (len(toks) - reused) / max(done.result.timings.prompt_ms / 1000, 1e-9)
        if best is not None:
            best.add("prompt", side, tokens_per_second=tps)
            best.seen_reuse(side, reused)


def _replay_round(engine: _Engine, chains: tuple[Chain, ...], prompts: Prompts,
                  best: _Best | None) -> None:
    """A two-token reply to a prompt of REPLAY_CONTEXT - 1 tokens, then its second step replayed
    under each chain: the cache holds the reply, so each replay decodes one token at position
    REPLAY_CONTEXT and captures every stage, as when a person replays a step in the window."""
    prompt = engine.tokenize(prompts.next(LONG_TEXT))[: REPLAY_CONTEXT - 1]
    two = SamplerSettings(temperature=0.0, max_tokens=2, ignore_eos=True)
    steps: list[int] = []
    for event in engine.host.wait(engine.host.generate((), two, prompt_tokens=prompt,
                                                       capture=False), timeout=_TIMEOUT):
        if isinstance(event, P.Step):
            steps.append(event.record.token_id)
        elif not isinstance(event, P.Done):
            raise BenchError(f"the engine failed before the replay: {event}")
    context = (*prompt, steps[0])
    for chain in chains:
        ms = engine.replay_ms(context, steps[1], chain.settings)
        if best is not None:
            best.add(chain.name, "replay", replay_ms=ms)


def _report(path: str, settings: LoadSettings, tokens: int, repeat: int,
            chains: tuple[Chain, ...], best: _Best, info: ModelInfo, ref_load_ms: float,
            loads: list[float], ceiling: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    ceiling_tps = best.values.get(("llama_bench", "llama_bench"), {}).get("tokens_per_second")
    if ceiling_tps is not None:
        ceiling = {**ceiling, "tokens_per_second": ceiling_tps,
                   "target": LLAMA_BENCH_TARGET}
    for chain in chains:
        ref_tps = best.get(chain.name, "reference", "tokens_per_second")
        off_tps = best.get(chain.name, "capture_off", "tokens_per_second")
        on_tps = best.get(chain.name, "capture_on", "tokens_per_second")
        ref_ttft = best.get(chain.name, "reference", "first_token_ms")
        on_ttft = best.get(chain.name, "capture_on", "first_token_ms")
        ratio = on_tps / ref_tps
        rows[chain.name] = {
            "label": chain.label,
            "reference_tokens_per_second": ref_tps,
            "engine_capture_off_tokens_per_second": off_tps,
            "engine_capture_on_tokens_per_second": on_tps,
            "ratio_capture_off_vs_reference": off_tps / ref_tps,
            "ratio_capture_on_vs_reference": ratio,
            # The same ratio round by round (sides paired on one prompt): how far the machine's
            # noise moves it, where the best of each side can pair two lucky rounds.
            "ratio_capture_on_vs_reference_by_round": best.paired(
                chain.name, "capture_on", chain.name, "reference"),
            "target": chain.target,
            "meets_target": ratio >= chain.target,
            "reference_first_token_ms": ref_ttft,
            "engine_first_token_ms": on_ttft,
            "ratio_first_token_vs_reference": on_ttft / ref_ttft,
            "replay_ms": best.get(chain.name, "replay", "replay_ms"),
            # Sampling alone, per token after the first (the least of the rounds): the
            # reference's llama_sampler_sample, the engine's own timing of its chain without
            # and with capture. Decode noise does not reach these.
            "reference_sample_ms": best.get(chain.name, "reference", "sample_ms"),
            "engine_capture_off_sample_ms": best.get(chain.name, "capture_off", "sample_ms"),
            "engine_capture_on_sample_ms": best.get(chain.name, "capture_on", "sample_ms"),
            "same_tokens": best.same.get(chain.name, False),
        }
        if ceiling_tps is not None:
            # Held to the target where llama.cpp's own sampling is cheap: llama-bench samples
            # nothing, so a chain that goes over the whole vocabulary (sorts it, penalises it
            # token by token) is slower than it on any engine.
            held = chain.target == CHEAP_TARGET
            rows[chain.name]["ratio_capture_on_vs_llama_bench"] = on_tps / ceiling_tps
            # llama.cpp's own chain called from Python, no capture: what is left to the engine
            # is the gap between this and the figure above.
            rows[chain.name]["ratio_reference_vs_llama_bench"] = ref_tps / ceiling_tps
            rows[chain.name]["ratio_capture_on_vs_llama_bench_by_round"] = best.paired(
                chain.name, "capture_on", "llama_bench", "llama_bench")
            rows[chain.name]["meets_llama_bench_target"] = (
                on_tps / ceiling_tps >= LLAMA_BENCH_TARGET if held else None)
    ref_pp = best.get("prompt", "reference", "tokens_per_second")
    eng_pp = best.get("prompt", "engine", "tokens_per_second")
    return {
        "model": path,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical cores",
        # The machine's 1-minute load average: before, during (the highest) and after the runs.
        # The bench's own threads account for about 2 of it with 2 threads; more means a
        # neighbour competed for the cores, and the figures say less.
        "load_average": {"before": round(loads[0], 2), "max": round(max(loads), 2),
                         "after": round(loads[-1], 2)},
        "threads": settings.n_threads or "all",
        "tokens": tokens,
        "rounds": repeat,
        "top_n": chains[0].settings.top_n,
        "chains": rows,
        "prompt_processing": {
            "tokens": PROMPT_TOKENS,
            "reference_tokens_per_second": ref_pp,
            "engine_tokens_per_second": eng_pp,
            "ratio_engine_vs_reference": eng_pp / ref_pp,
        },
        "replay": {"context_tokens": REPLAY_CONTEXT, "target_ms": REPLAY_TARGET_MS,
                   "worst_ms": max(row["replay_ms"] for row in rows.values())},
        "reused_prompt_tokens_max": dict(best.reused),
        "llama_bench": ceiling,
        "reference_load_ms": ref_load_ms,
        "engine_load_ms": info.load_ms,
    }


def format_report(r: dict[str, Any]) -> str:
    head = (f"{'chain':<12} {'reference':>10} {'capture off':>16} {'capture on':>16} "
            f"{'target':>13} {'first token ms':>26} {'replay':>8}")
    unit = (f"{'':<12} {'tok/s':>10} {'tok/s (ratio)':>16} {'tok/s (ratio)':>16} {'':>13} "
            f"{'reference / engine (ratio)':>26} {'ms':>8}")
    lines = [
        f"model: {r['model']}",
        f"machine: {r['machine']}; 1-minute load average {r['load_average']['before']} before, "
        f"{r['load_average']['max']} at most during, {r['load_average']['after']} after",
        f"threads: {r['threads']}  tokens: {r['tokens']}  rounds: {r['rounds']} (interleaved, "
        f"best of each); capture on keeps the top {r['top_n']} of every stage; in each round "
        "the three sides of a chain get the same new prompt",
        "",
        head,
        unit,
    ]
    for name, row in r["chains"].items():
        met = "met" if row["meets_target"] else "MISSED"
        first = (f"{row['reference_first_token_ms']:.1f} / {row['engine_first_token_ms']:.1f} "
                 f"({row['ratio_first_token_vs_reference']:.2f})")
        lines.append(
            f"{name:<12} {row['reference_tokens_per_second']:>10.1f} "
            f"{row['engine_capture_off_tokens_per_second']:>8.1f} "
            f"({row['ratio_capture_off_vs_reference']:.3f}) "
            f"{row['engine_capture_on_tokens_per_second']:>8.1f} "
            f"({_ratio(row['ratio_capture_on_vs_reference'], row['target'])}) "
            f"{'>=' + format(row['target'], '.2f') + ' ' + met:>13} {first:>26} "
            f"{row['replay_ms']:>8.1f}"
        )
    lines += ["", "sampling per token (ms; llama_sampler_sample for the reference, the engine's "
              "own timing of its chain):", f"{'chain':<12} {'reference':>10} "
              f"{'capture off':>12} {'capture on':>11}"]
    for name, row in r["chains"].items():
        lines.append(f"{name:<12} {row['reference_sample_ms']:>10.3f} "
                     f"{row['engine_capture_off_sample_ms']:>12.3f} "
                     f"{row['engine_capture_on_sample_ms']:>11.3f}")
    lines += ["", "capture on ÷ reference round by round (the same prompt on both sides, back to "
              "back; with llama-bench's run of that round): median (least–most)"]
    for name, row in r["chains"].items():
        line = f"{name:<12} {_spread(row['ratio_capture_on_vs_reference_by_round'])}"
        if "ratio_capture_on_vs_llama_bench_by_round" in row:
            line += (f"   ÷ llama-bench "
                     f"{_spread(row['ratio_capture_on_vs_llama_bench_by_round'])}")
        lines.append(line)
    lines.append("")
    for name, row in r["chains"].items():
        same = ("" if row["same_tokens"] else
                " — the sides sampled different tokens: their costs differ by more than capture")
        lines.append(f"  {name}: {row['label']}{same}")
    pp, replay, reused = r["prompt_processing"], r["replay"], r["reused_prompt_tokens_max"]
    lines += [
        "",
        f"prompt processing ({pp['tokens']} tokens): reference "
        f"{pp['reference_tokens_per_second']:.1f} tok/s, engine "
        f"{pp['engine_tokens_per_second']:.1f} tok/s (ratio {pp['ratio_engine_vs_reference']:.3f})",
        f"replay of a step at a {replay['context_tokens']}-token context (engine, wall time): "
        f"worst {replay['worst_ms']:.1f} ms over the chains (target <= {replay['target_ms']:.0f})",
        f"prompt tokens found in the KV cache, at most: reference {reused['reference']}, engine "
        f"{reused['engine']} (BOS only: every prompt is new)",
        f"load: reference {r['reference_load_ms']:.0f} ms, engine {r['engine_load_ms']:.0f} ms",
        "",
        *_ceiling_lines(r),
    ]
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    """'median (least–most)' of a list of ratios, three decimals."""
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def _ratio(value: float, target: float) -> str:
    """Three decimals, or four where three would round a miss up to the target."""
    return f"{value:.4f}" if value < target <= round(value, 3) else f"{value:.3f}"


def _ceiling_lines(r: dict[str, Any]) -> list[str]:
    ceiling = r["llama_bench"]
    if "missing" in ceiling:
        return [f"llama-bench: not found ({ceiling['missing']})"]
    if "tokens_per_second" not in ceiling:
        return [f"llama-bench: no figure ({ceiling['error'] or 'it did not run'})"]
    lines = [f"llama.cpp's llama-bench, the decode ceiling (tg{r['tokens']} at depth "
             f"{ceiling['depth']}, the engine's load settings, best of {r['rounds']}): "
             f"{ceiling['tokens_per_second']:.1f} tok/s"]
    if ceiling["error"]:
        lines.append(f"  (a later run failed: {ceiling['error']})")
    lines.append(f"capture on ÷ llama-bench (target >= {ceiling['target']:.2f} where llama.cpp's "
                 "own sampling is cheap; the others go over the whole vocabulary, which it does "
                 "not), and the reference's (llama.cpp's own chain in a Python loop, no "
                 "capture):")
    for name, row in r["chains"].items():
        held = row["meets_llama_bench_target"]
        verdict = "" if held is None else (" met" if held else " MISSED")
        ratio = _ratio(row["ratio_capture_on_vs_llama_bench"], ceiling["target"])
        lines.append(f"  {name:<12} {ratio}{verdict:<7}  reference "
                     f"{row['ratio_reference_vs_llama_bench']:.3f}")
    return lines
