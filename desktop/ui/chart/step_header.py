"""The chart dock's header words for one step: what was picked and how sure, what a draft proposed
for it (speculative decoding: the proposal, its probability under the target as the record reports
it, accepted or rejected), what the step was sampled with, and what a what-if under other
settings would change. Pure text from `StepRecord`s and `SamplerSettings` (no Qt); called on
the GUI thread by `chart_dock`.
"""

from __future__ import annotations

from collections.abc import Sequence

from desktop.core.generation import sampled_with
from desktop.core.sampler_stages import PARAM_BY_FIELD, STAGE_OF_FIELD
from desktop.core.sampling import STAGE_RAW, SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import (
    compare_steps,
    describe_comparison,
    format_bits,
    format_prob,
    stage_is_complete,
    token_label,
)

# The settings that shape a step's distribution: every stage's knobs and the chain's order,
# temperature first (what people tune, as `sampled_with` names it). The rest (seed, max tokens,
# stop strings, how many candidates are reported) do not.
SHAPING_FIELDS: tuple[str, ...] = (
    "temperature", *(f for f in STAGE_OF_FIELD if f != "temperature"), "order")


def step_header(record: StepRecord, n_bars: int) -> str:
    """"Step 2 · ‘ the’ · p 41% (raw 38%, rank 1) · entropy 3.1 bits → 2.0 bits · 50 of …"."""
    kind = "Replay of step" if record.replayed else "Step"
    listed = len(record.stages[0].ids) if record.stages else 0
    # A remote engine does not say how large its vocabulary is, only its top candidates.
    shown = (f"{min(n_bars, listed)} of {record.n_vocab:,} tokens shown" if record.n_vocab
             else f"{min(n_bars, listed)} shown of the endpoint's top {listed}")
    draft = draft_words(record, record.stages[0].ids[:n_bars] if record.stages else ())
    return (
        f"{kind} {record.step} · ‘{token_label(record.piece)}’ · p {format_prob(record.prob)} "
        f"(raw {format_prob(record.raw_prob)}, rank {record.raw_rank}) · entropy "
        f"{format_bits(record.entropy_raw)} → {format_bits(record.entropy_final)} · "
        f"{shown}" + (f"\n{draft}" if draft else "")
    )


def target_p(record: StepRecord) -> str:
    """The proposal's probability under the target, in words, as the record reports it:
    "target p 12%" (in the distribution the token was drawn from), "target p 0, removed by the
    sampler (raw 9.0%)", "raw p 0.4%, beyond the target's top 40", or "not in the target's top
    40" when no stage lists it."""
    token = record.draft_token
    final = record.stages[-1] if record.stages else None
    if final is None:
        return "no distribution recorded"
    p = final.prob_of(token)
    if p is not None:
        return f"target p {format_prob(p)}"
    raw = record.stage(STAGE_RAW)
    raw_p = raw.prob_of(token) if raw is not None else None
    if stage_is_complete(final):
        also = f" (raw {format_prob(raw_p)})" if raw_p is not None else ""
        return f"target p 0, removed by the sampler{also}"
    if raw_p is not None:
        return f"raw p {format_prob(raw_p)}, beyond the target's top {len(final.ids)}"
    listed = len(raw.ids) if raw is not None else len(final.ids)
    return f"not in the target's top {listed}"


def draft_words(record: StepRecord, bar_ids: Sequence[int] = ()) -> str:
    """The header's line about the draft ("" when the step had no proposal)."""
    token = record.draft_token
    if token < 0:
        return ""
    proposed = token_label(record.pieces.get(token, ""))
    if record.accepted:
        verdict = "accepted"
    else:
        verdict = f"rejected: the model drew ‘{token_label(record.piece)}’"
    where = "" if token in bar_ids or not bar_ids else f" · not among the {len(bar_ids)} bars shown"
    return f"Draft proposed ‘{proposed}’ ({target_p(record)}) — {verdict}{where}"


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


def what_if_settings(recorded: SamplerSettings, other: SamplerSettings) -> SamplerSettings:
    """The recorded settings with `other`'s shaping knobs: the step as `other` would shape it
    (the seed, candidate count and the rest stay the step's own)."""
    return recorded.replace(**{f: getattr(other, f) for f in SHAPING_FIELDS})


def _field_words(field: str, value: object) -> str:
    if field == "order":
        return "order " + " → ".join(str(v) for v in value)  # type: ignore[attr-defined]
    if field == "temperature":
        return f"T {value:g}"
    stage = STAGE_OF_FIELD[field]
    param = PARAM_BY_FIELD[field]
    label = stage.label if len(stage.params) == 1 else param.label
    if isinstance(value, tuple):
        return f"{label} changed"
    return f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}"


def settings_difference(recorded: SamplerSettings | None, what_if: SamplerSettings) -> str:
    """The shaping knobs `what_if` changes, in words: "T 1.5 · top-p 0.5" ("" when none)."""
    if recorded is None:
        return "other settings"
    return " · ".join(_field_words(f, getattr(what_if, f)) for f in SHAPING_FIELDS
                      if getattr(what_if, f) != getattr(recorded, f))


def what_if_line(original: StepRecord, replayed: StepRecord,
                 recorded: SamplerSettings | None, what_if: SamplerSettings) -> str:
    """"top-p 0.5 would keep 5 of 23 · ‘ the’ 76% → 91%": the knobs changed, how many candidates
    the final stage would keep of those it kept, and the chosen token's probability before and
    after (from the two records' reported numbers)."""
    cmp = compare_steps(original, replayed)
    token = token_label(original.piece)
    after = (f"{format_prob(cmp.prob_after)}" if cmp.prob_after > 0
             else "0 (no longer possible)")
    return (f"{settings_difference(recorded, what_if) or 'the same settings'} would keep "
            f"{cmp.kept_after:,} of {cmp.kept_before:,} · ‘{token}’ "
            f"{format_prob(cmp.prob_before)} → {after}")


def what_if_details(original: StepRecord, replayed: StepRecord) -> str:
    """The longer account (which tokens became possible or impossible), for a tooltip."""
    pieces = {**original.pieces, **replayed.pieces}
    return describe_comparison(compare_steps(original, replayed), pieces)
