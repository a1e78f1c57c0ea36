"""The chart dock's header words for one step: what was picked and how sure, and what the step
was sampled with. Pure text from a `StepRecord` and recorded `SamplerSettings` (no Qt); called on
the GUI thread by `chart_dock`.
"""

from __future__ import annotations

from desktop.core.generation import sampled_with
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import format_bits, format_prob, token_label


def step_header(record: StepRecord, n_bars: int) -> str:
    """"Step 2 · ‘ the’ · p 41% (raw 38%, rank 1) · entropy 3.1 bits → 2.0 bits · 50 of …"."""
    kind = "Replay of step" if record.replayed else "Step"
    listed = len(record.stages[0].ids) if record.stages else 0
    # A remote engine does not say how large its vocabulary is, only its top candidates.
    shown = (f"{min(n_bars, listed)} of {record.n_vocab:,} tokens shown" if record.n_vocab
             else f"{min(n_bars, listed)} shown of the endpoint's top {listed}")
    return (
        f"{kind} {record.step} · ‘{token_label(record.piece)}’ · p {format_prob(record.prob)} "
        f"(raw {format_prob(record.raw_prob)}, rank {record.raw_rank}) · entropy "
        f"{format_bits(record.entropy_raw)} → {format_bits(record.entropy_final)} · "
        f"{shown}"
    )


def sampled_header(record: StepRecord, settings: SamplerSettings | None,
                   original: SamplerSettings | None, known: bool) -> str:
    """What the shown step was sampled with; for a replay, what it was recomputed with too.
    `settings`: those the shown record was drawn (or recomputed) under; `original`: the step's
    recorded ones; `known`: whether anything records them ("" when nothing does)."""
    if record.replayed:
        return f"What-if under {sampled_with(settings)} · sampled with {sampled_with(original)}"
    if settings is None and not known:
        return ""
    return f"Sampled with {sampled_with(settings)}"
