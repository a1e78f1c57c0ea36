"""Readable words for tokens and steps: visible whitespace, byte tokens as hex, probabilities.

Pure (no Qt); runs on whichever thread calls it, in practice the GUI thread (chart labels,
inspector text, exports) and the CLI. Nothing here computes a probability: it formats and compares
the numbers a `StepRecord` reports.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from desktop.core.steps import StageView, StepRecord

EMPTY = "∅"
_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "→", "\r": "␍", "\f": "␌", "\v": "␋"}
# Byte tokens come in two spellings: llama.cpp's display piece escapes stray bytes as "\xE2"
# (Python's backslashreplace), and SentencePiece vocabularies name them "<0xE2>".
_BYTE = re.compile(r"\\x([0-9a-fA-F]{2})|<0x([0-9a-fA-F]{2})>")


def token_label(piece: str, max_chars: int = 24) -> str:
    """A token's text with whitespace made visible and bytes as ⟨E2⟩; "∅" when empty."""
    if not piece:
        return EMPTY
    out: list[str] = []
    pos = 0
    for match in _BYTE.finditer(piece):
        out.append(_visible(piece[pos : match.start()]))
        out.append(f"⟨{(match.group(1) or match.group(2)).upper()}⟩")
        pos = match.end()
    out.append(_visible(piece[pos:]))
    text = "".join(out)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text


def _visible(text: str) -> str:
    chars: list[str] = []
    for ch in text:
        if ch in _WHITESPACE:
            chars.append(_WHITESPACE[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            chars.append(f"⟨{ord(ch):02X}⟩")  # other control characters would draw as nothing
        else:
            chars.append(ch)
    return "".join(chars)


def format_prob(p: float) -> str:
    """A probability as a short percentage with about two significant digits."""
    if p <= 0:
        return "0%"
    if p >= 0.995:
        return "100%" if p >= 0.99995 else f"{p * 100:.2f}%"
    if p >= 0.1:
        return f"{p * 100:.0f}%"
    if p >= 0.01:
        return f"{p * 100:.1f}%"
    if p >= 0.0001:
        return f"{p * 100:.2g}%"
    return f"{p:.1e}"


def format_bits(bits: float) -> str:
    # A one-token distribution can come out as -1e-9 or -0.0 in float arithmetic: show 0.00, not
    # -0.00 (max(-0.0, 0.0) is -0.0, so compare instead).
    return f"{bits if bits > 0.0 else 0.0:.2f} bits"


# --- stages ---


def stage_is_complete(view: StageView) -> bool:
    """True when the stage lists every survivor, so an unlisted token was really removed."""
    return len(view.ids) >= view.kept


def stage_changed(before: StageView, after: StageView) -> bool:
    """False when a stage left the candidates exactly as it found them (turned off or no cut)."""
    return (before.kept, before.ids, before.probs) != (after.kept, after.ids, after.probs)


def feeding_stage(record: StepRecord, name: str) -> StageView | None:
    """The stage whose output the named stage received (the one before it in the chain)."""
    for before, after in zip(record.stages, record.stages[1:]):
        if after.name == name:
            return before
    return None


# --- comparing a replayed step with the original ---


@dataclass(frozen=True)
class StepComparison:
    """What a replay changed about the final candidate set and the originally chosen token."""

    token_id: int
    prob_before: float
    prob_after: float
    kept_before: int
    kept_after: int
    became_possible: tuple[int, ...]  # listed in the replay's final stage, not in the original's
    became_impossible: tuple[int, ...]  # listed in the original's final stage, not in the replay's
    exact: bool  # both final stages list all their survivors, so the two lists are complete


def compare_steps(original: StepRecord, replayed: StepRecord) -> StepComparison:
    """Compare the final stages of a step and its replay (set arithmetic on reported ids)."""
    before = original.stages[-1] if original.stages else StageView("final", 0, 0.0)
    after = replayed.stages[-1] if replayed.stages else StageView("final", 0, 0.0)
    old, new = set(before.ids), set(after.ids)
    return StepComparison(
        token_id=original.token_id,
        prob_before=original.prob,
        prob_after=replayed.prob,
        kept_before=before.kept,
        kept_after=after.kept,
        became_possible=tuple(i for i in after.ids if i not in old),
        became_impossible=tuple(i for i in before.ids if i not in new),
        exact=stage_is_complete(before) and stage_is_complete(after),
    )


def describe_comparison(cmp: StepComparison, pieces: dict[int, str], limit: int = 6) -> str:
    """One or two plain sentences saying what the replay changed."""

    def names(ids: tuple[int, ...]) -> str:
        shown = ", ".join(f"‘{token_label(pieces.get(i, ''))}’" for i in ids[:limit])
        more = len(ids) - limit
        return shown + (f" and {more} more" if more > 0 else "")

    chosen = token_label(pieces.get(cmp.token_id, ""))
    parts = [
        f"‘{chosen}’ was {format_prob(cmp.prob_before)}, now {format_prob(cmp.prob_after)}"
        + (" (no longer possible)." if cmp.prob_after <= 0 else "."),
        f"Candidates: {cmp.kept_before} → {cmp.kept_after}.",
    ]
    if cmp.became_possible:
        parts.append(f"Became possible: {names(cmp.became_possible)}.")
    if cmp.became_impossible:
        parts.append(f"Became impossible: {names(cmp.became_impossible)}.")
    if not cmp.became_possible and not cmp.became_impossible:
        parts.append("The same tokens remain possible.")
    if not cmp.exact:
        parts.append("(Only the listed top candidates are compared.)")
    return " ".join(parts)


# --- exports ---

CSV_COLUMNS = ("stage", "rank", "token_id", "piece", "label", "prob", "raw_prob", "chosen")


def step_rows(record: StepRecord) -> list[dict[str, object]]:
    """One row per listed candidate per stage, with its raw probability where the raw stage lists
    it (blank otherwise)."""
    raw = record.stage("raw")
    raw_probs = dict(zip(raw.ids, raw.probs)) if raw is not None else {}
    rows: list[dict[str, object]] = []
    for view in record.stages:
        for rank, (token, p) in enumerate(zip(view.ids, view.probs), start=1):
            piece = record.pieces.get(token, "")
            rows.append({
                "stage": view.name,
                "rank": rank,
                "token_id": token,
                "piece": piece,
                "label": token_label(piece, max_chars=200),
                "prob": p,
                "raw_prob": raw_probs.get(token, ""),
                "chosen": int(token == record.token_id),
            })
    return rows


def step_csv(record: StepRecord) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(step_rows(record))
    return buffer.getvalue()


def step_json(record: StepRecord) -> str:
    data = record.to_json()
    data["replayed"] = record.replayed
    data["n_vocab"] = record.n_vocab
    return json.dumps(data, ensure_ascii=False, indent=2)
