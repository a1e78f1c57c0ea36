"""Compare: one prompt under two or more setting sets, N samples each, and what differs.

Pure; runs on the one thread that drives a comparison (the CLI's main thread, the GUI thread).
`plan_runs` lists the generations to run: sample i of every set uses seed base + i (or the set's
own fixed seed + i), so the sets are compared on equal draws, sample by sample. A `CompareJob`
hands out those runs one after the other and collects each run's StepRecords as the engine
reports them; `CompareReport` holds the finished samples and derives, from the records alone
(nothing recomputes a probability):

- the first step where the sets' transcripts of a sample diverge (`divergence`);
- per set (`SetStats`): the distinct continuations with their counts, the distribution of the
  first token, the mean entropy of the raw and of the final distribution and the mean
  probability of the chosen token (pooled over every step of every sample, so each generated
  token weighs the same), with the per-sample means kept for plots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.core.compare_sets import set_label, spec_of
from desktop.core.sampler_stages import RANDOM_SEED
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import GenerationDone, StepRecord

MAX_SETS = 8
MAX_SAMPLES = 500
# Every step's record is kept until the comparison is shown: bound what one comparison may hold.
MAX_TOTAL_TOKENS = 250_000
DIVERGENCE_TOP = 10  # candidates per set listed at the divergence step in the JSON report


def sample_seed(settings: SamplerSettings, base_seed: int, sample: int) -> int:
    """The seed of sample `sample` of a set: its own fixed seed, else the comparison's, plus the
    sample's index (wrapping below RANDOM_SEED, which would mean "pick a random one")."""
    start = base_seed if settings.seed == RANDOM_SEED else settings.seed
    return (start + sample) % RANDOM_SEED


@dataclass(frozen=True)
class CompareRun:
    """One generation of a comparison: which set, which sample, and the settings sent."""

    index: int  # 0-based, in the order the runs are generated
    set_index: int
    sample: int
    settings: SamplerSettings  # the set's settings with this sample's seed


def plan_runs(sets: Sequence[SamplerSettings], samples: int, seed: int) -> tuple[CompareRun, ...]:
    """Every run of a comparison, sample by sample (sample 0 of every set first), so a comparison
    stopped half-way still compares the sets on the samples it finished.

    Raises SettingsError (in words) for fewer than two sets, too many, or a bad count or seed."""
    if len(sets) < 2:
        raise SettingsError("a comparison needs two or more setting sets")
    if len(sets) > MAX_SETS:
        raise SettingsError(f"a comparison takes at most {MAX_SETS} setting sets")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise SettingsError(f"samples must be a whole number between 1 and {MAX_SAMPLES}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < RANDOM_SEED:
        raise SettingsError(f"the seed must be a whole number between 0 and {RANDOM_SEED - 1}")
    total = samples * sum(s.max_tokens for s in sets)
    if total > MAX_TOTAL_TOKENS:
        raise SettingsError(f"this comparison could generate {total:,} tokens; at most "
                            f"{MAX_TOTAL_TOKENS:,} (fewer samples or max tokens)")
    runs: list[CompareRun] = []
    for sample in range(samples):
        for index, settings in enumerate(sets):
            settings.validated()
            runs.append(CompareRun(len(runs), index, sample, settings.replace(
                seed=sample_seed(settings, seed, sample))))
    return tuple(runs)


@dataclass(frozen=True)
class Sample:
    """One finished (or stopped) generation of a set."""

    set_index: int
    sample: int
    seed: int
    steps: tuple[StepRecord, ...]
    text: str
    finish_reason: str  # as GenerationDone says: "stop", "length", "cancelled", …

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(r.token_id for r in self.steps)


@dataclass(frozen=True)
class Divergence:
    """Where the transcripts of one sample stop agreeing."""

    sample: int
    step: int  # 0-based index of the first step whose tokens differ
    # Per set (None for a set whose sample is missing): its record at that step, or None when its
    # generation had already ended there.
    records: tuple[StepRecord | None, ...]


def first_divergence(sequences: Sequence[Sequence[int]]) -> int | None:
    """The first index where the token sequences differ, counting a sequence that ended while
    another went on; None when they are all the same (or fewer than two)."""
    if len(sequences) < 2:
        return None
    shortest = min(len(s) for s in sequences)
    for k in range(shortest):
        if len({s[k] for s in sequences}) > 1:
            return k
    return shortest if any(len(s) != shortest for s in sequences) else None


@dataclass(frozen=True)
class Continuation:
    text: str
    count: int
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class FirstToken:
    token_id: int
    piece: str  # the token's own piece (bytes as \\xNN), for labels
    count: int


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class SetStats:
    """What a set's samples did: variety, first token, entropy and confidence."""

    label: str
    samples: int
    tokens: int  # generated tokens over all samples
    continuations: tuple[Continuation, ...]  # most frequent first, ties in sample order
    first_tokens: tuple[FirstToken, ...]  # most frequent first
    mean_entropy_raw: float | None  # bits, over every step; None without steps
    mean_entropy_final: float | None
    mean_prob: float | None  # the chosen token's probability in its final distribution
    # One mean per sample that has steps (for plots of the spread).
    sample_entropy_raw: tuple[float, ...] = ()
    sample_entropy_final: tuple[float, ...] = ()
    sample_prob: tuple[float, ...] = ()

    @property
    def distinct(self) -> int:
        return len(self.continuations)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "samples": self.samples, "tokens": self.tokens,
            "distinct": self.distinct,
            "continuations": [{"text": c.text, "count": c.count} for c in self.continuations],
            "first_tokens": [{"token_id": t.token_id, "piece": t.piece, "count": t.count}
                             for t in self.first_tokens],
            "mean_entropy_raw": self.mean_entropy_raw,
            "mean_entropy_final": self.mean_entropy_final,
            "mean_prob": self.mean_prob,
            "sample_entropy_raw": list(self.sample_entropy_raw),
            "sample_entropy_final": list(self.sample_entropy_final),
            "sample_prob": list(self.sample_prob),
        }


def set_stats(label: str, samples: Sequence[Sample]) -> SetStats:
    """The statistics of one set's samples."""
    by_tokens: dict[tuple[int, ...], list[Sample]] = {}
    for s in samples:
        by_tokens.setdefault(s.token_ids, []).append(s)
    # sorted() is stable: equally frequent continuations stay in the order they first appeared.
    continuations = tuple(sorted(
        (Continuation(group[0].text, len(group), ids) for ids, group in by_tokens.items()),
        key=lambda c: -c.count))
    firsts = Counter(s.steps[0].token_id for s in samples if s.steps)
    pieces = {s.steps[0].token_id: s.steps[0].piece for s in samples if s.steps}
    first_tokens = tuple(FirstToken(t, pieces[t], n) for t, n in firsts.most_common())
    steps = [r for s in samples for r in s.steps]
    with_steps = [s for s in samples if s.steps]

    def per_sample(attr: str) -> tuple[float, ...]:
        return tuple(sum(getattr(r, attr) for r in s.steps) / len(s.steps) for s in with_steps)

    return SetStats(
        label=label, samples=len(samples), tokens=len(steps), continuations=continuations,
        first_tokens=first_tokens,
        mean_entropy_raw=_mean([r.entropy_raw for r in steps]),
        mean_entropy_final=_mean([r.entropy_final for r in steps]),
        mean_prob=_mean([r.prob for r in steps]),
        sample_entropy_raw=per_sample("entropy_raw"),
        sample_entropy_final=per_sample("entropy_final"),
        sample_prob=per_sample("prob"))


def _token_json(r: StepRecord) -> dict[str, Any]:
    return {"step": r.step, "token_id": r.token_id, "text": r.text, "piece": r.piece,
            "prob": r.prob, "raw_prob": r.raw_prob, "raw_rank": r.raw_rank,
            "entropy_raw": r.entropy_raw, "entropy_final": r.entropy_final}


def _final_top(r: StepRecord) -> list[dict[str, Any]]:
    final = r.stages[-1] if r.stages else None
    if final is None:
        return []
    return [{"id": i, "text": r.pieces.get(i, ""), "p": p}
            for i, p in list(zip(final.ids, final.probs))[:DIVERGENCE_TOP]]


@dataclass(frozen=True)
class CompareReport:
    """A comparison's samples (those finished so far) and what they show."""

    prompt: str
    sets: tuple[SamplerSettings, ...]  # as given, before each sample's seed
    samples_per_set: int
    seed: int  # the base seed: sample i of a set without its own seed used seed + i
    samples: tuple[Sample, ...] = ()  # in the order they ran
    labels: tuple[str, ...] = ()
    cancelled: bool = False
    error: str = ""  # why the comparison ended early, in words ("" when it did not fail)
    base: SamplerSettings = field(default_factory=SamplerSettings)  # what the sets changed

    def spec(self, set_index: int) -> str:
        """What set `set_index` changed from `base`, as a spec ("temperature=0.2")."""
        return spec_of(self.sets[set_index], self.base)

    def label(self, set_index: int) -> str:
        return self.labels[set_index] if set_index < len(self.labels) else set_label(set_index)

    def samples_of(self, set_index: int) -> tuple[Sample, ...]:
        return tuple(sorted((s for s in self.samples if s.set_index == set_index),
                            key=lambda s: s.sample))

    def sample(self, set_index: int, sample: int) -> Sample | None:
        for s in self.samples:
            if s.set_index == set_index and s.sample == sample:
                return s
        return None

    def divergence(self, sample: int = 0) -> Divergence | None:
        """Where the sets' transcripts of one sample first differ; None when they are the same
        or fewer than two sets have finished that sample."""
        found = [self.sample(i, sample) for i in range(len(self.sets))]
        present = [s for s in found if s is not None]
        step = first_divergence([s.token_ids for s in present])
        if step is None:
            return None
        records = tuple(None if s is None or step >= len(s.steps) else s.steps[step]
                        for s in found)
        return Divergence(sample, step, records)

    def stats(self) -> tuple[SetStats, ...]:
        return tuple(set_stats(self.label(i), self.samples_of(i)) for i in range(len(self.sets)))

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON: sets with their samples' tokens and statistics, and where
        each sample diverges (with each set's top candidates at that step)."""
        stats = self.stats()
        sets = []
        for i, settings in enumerate(self.sets):
            sets.append({
                "label": self.label(i), "spec": self.spec(i),
                "settings": settings.to_json(), "stats": stats[i].to_json(),
                "samples": [{"sample": s.sample, "seed": s.seed, "text": s.text,
                             "finish_reason": s.finish_reason,
                             "tokens": [_token_json(r) for r in s.steps]}
                            for s in self.samples_of(i)],
            })
        divergences: list[dict[str, Any]] = []
        for n in range(self.samples_per_set):
            d = self.divergence(n)
            if d is None:
                continue
            divergences.append({"sample": n, "step": d.step, "sets": [
                {"label": self.label(i), "ended": r is None,
                 **({} if r is None else {"token_id": r.token_id, "text": r.text,
                                          "prob": r.prob, "top": _final_top(r)})}
                for i, r in enumerate(d.records)]})
        return {"prompt": self.prompt, "seed": self.seed,
                "samples_per_set": self.samples_per_set, "cancelled": self.cancelled,
                "error": self.error, "sets": sets, "divergence": divergences}


@dataclass
class CompareJob:
    """A comparison in progress, driven by one thread: `start_next` → the engine generates →
    `add_step` for each StepRecord → `finish` with its GenerationDone → `start_next`…"""

    prompt: str
    sets: tuple[SamplerSettings, ...]
    samples_per_set: int = 1
    seed: int = 0
    labels: tuple[str, ...] = ()
    base: SamplerSettings = field(default_factory=SamplerSettings)  # what the sets start from
    runs: tuple[CompareRun, ...] = field(init=False)
    current: CompareRun | None = field(init=False, default=None)
    _next: int = field(init=False, default=0)
    _steps: list[StepRecord] = field(init=False, default_factory=list)
    _done: list[Sample] = field(init=False, default_factory=list)
    cancelled: bool = field(init=False, default=False)
    error: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.sets = tuple(self.sets)
        self.runs = plan_runs(self.sets, self.samples_per_set, self.seed)
        if not self.labels:
            self.labels = tuple(set_label(i) for i in range(len(self.sets)))

    @property
    def finished(self) -> bool:
        return self.cancelled or bool(self.error) or self._next >= len(self.runs)

    @property
    def progress(self) -> tuple[int, int]:
        """(runs finished, runs in all)."""
        return len(self._done), len(self.runs)

    def start_next(self) -> CompareRun | None:
        """The next run to generate, or None when every run is done (or the job was stopped)."""
        if self.finished:
            self.current = None
            return None
        self.current = self.runs[self._next]
        self._next += 1
        self._steps = []
        return self.current

    def add_step(self, record: StepRecord) -> None:
        if self.current is not None:
            self._steps.append(record)

    def finish(self, done: GenerationDone) -> Sample | None:
        """The current run ended: keep it as a sample (a stopped one too, with what it had)."""
        run = self.current
        if run is None:
            return None
        sample = Sample(run.set_index, run.sample, run.settings.seed, tuple(self._steps),
                        done.text, done.finish_reason)
        self._done.append(sample)
        self.current, self._steps = None, []
        if done.finish_reason == "cancelled":
            self.cancelled = True
        return sample

    def cancel(self) -> None:
        self.cancelled = True

    def fail(self, message: str) -> None:
        """The engine refused or died: the comparison ends with what it has."""
        self.error = message
        self.current, self._steps = None, []

    def partial(self) -> tuple[StepRecord, ...]:
        """The steps of the run in progress so far."""
        return tuple(self._steps)

    def report(self) -> CompareReport:
        return CompareReport(self.prompt, self.sets, self.samples_per_set, self.seed,
                             tuple(self._done), self.labels, self.cancelled, self.error,
                             self.base)
