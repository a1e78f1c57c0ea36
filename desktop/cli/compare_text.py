"""`openlid compare`'s text output: a `CompareReport` in words, for a terminal of a given width.

Pure formatting (no engine, no Qt); runs in the CLI's main thread. The first sample's transcripts
go side by side in columns when each column gets at least `MIN_COLUMN` characters, otherwise one
after the other; in both, `MARK` stands before the first token where the sets differ. With more
than one sample per set, a table of each set's statistics follows, then its most frequent
continuations and first tokens. Every number is read from the report.
"""

from __future__ import annotations

import textwrap

from desktop.core.compare import CompareReport, Divergence, Sample, SetStats
from desktop.core.compare_sets import describe
from desktop.core.token_text import format_bits, format_prob, token_label

MARK = "»"  # stands before the first divergent token in each transcript
MIN_COLUMN = 28
GAP = " │ "
LISTED = 5  # continuations and first tokens listed per set


def _marked_text(sample: Sample, divergence: Divergence | None) -> str:
    if divergence is None:
        return sample.text
    before = "".join(r.text for r in sample.steps[: divergence.step])
    after = "".join(r.text for r in sample.steps[divergence.step:])
    if not sample.text.startswith(before):  # a stop string cut the text: mark nothing
        return sample.text
    return before + MARK + after[: max(0, len(sample.text) - len(before))]


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, width, drop_whitespace=False,
                                   replace_whitespace=False) or [""])
    return lines


def _header(report: CompareReport, index: int, sample: Sample | None) -> str:
    label = report.label(index)
    if sample is None:
        return f"{label}: not generated"
    return (f"{label} · seed {sample.seed} · {len(sample.steps)} tokens · "
            f"{sample.finish_reason}")


def divergence_line(report: CompareReport, sample: int = 0) -> str:
    found = [report.sample(i, sample) for i in range(len(report.sets))]
    if sum(s is not None for s in found) < 2:
        return "Fewer than two sets finished this sample: nothing to compare."
    d = report.divergence(sample)
    if d is None:
        n = max(len(s.steps) for s in found if s is not None)
        return f"The sets wrote the same {n} tokens: no divergence."
    parts = []
    for i, record in enumerate(d.records):
        if found[i] is None:
            continue
        what = ("ended" if record is None
                else f"{token_label(record.piece)!r} ({format_prob(record.prob)})")
        parts.append(f"{report.label(i)} {what}")
    return f"Diverges at step {d.step + 1} ({MARK} marks it): " + " · ".join(parts)


def transcripts(report: CompareReport, width: int, sample: int = 0) -> list[str]:
    """The sets' transcripts of one sample, in columns or one after the other."""
    n = len(report.sets)
    d = report.divergence(sample)
    found = [report.sample(i, sample) for i in range(n)]
    texts = [_marked_text(s, d) if s is not None else "" for s in found]
    column = (width - len(GAP) * (n - 1)) // n
    if column < MIN_COLUMN:
        out: list[str] = []
        for i in range(n):
            out.append(_header(report, i, found[i]))
            out.extend("  " + line for line in _wrap(texts[i], max(20, width - 2)))
            out.append("")
        return out[:-1]
    columns = [[_header(report, i, found[i])[:column], "─" * column, *_wrap(texts[i], column)]
               for i in range(n)]
    rows = max(len(c) for c in columns)
    return [GAP.join(c[r].ljust(column) if r < len(c) else " " * column for c in columns).rstrip()
            for r in range(rows)]


def _mean(value: float | None, bits: bool = False) -> str:
    if value is None:
        return "–"
    return format_bits(value) if bits else format_prob(value)


def stats_table(stats: tuple[SetStats, ...]) -> list[str]:
    rows = [("set", "distinct", "first tokens", "entropy raw → final", "p(chosen)")]
    for s in stats:
        firsts = ", ".join(f"{token_label(t.piece)!r} {t.count}" for t in s.first_tokens[:3])
        if len(s.first_tokens) > 3:
            firsts += ", …"
        entropy = (f"{_mean(s.mean_entropy_raw, True)} → {_mean(s.mean_entropy_final, True)}"
                   if s.tokens else "–")
        rows.append((s.label, f"{s.distinct} / {s.samples}", firsts, entropy,
                     _mean(s.mean_prob)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _one_line(text: str, limit: int) -> str:
    flat = text.replace("\n", "↵")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_report(report: CompareReport, width: int = 100) -> str:
    """The whole report as terminal text."""
    width = max(40, width)
    lines = [f"Prompt: {_one_line(report.prompt, width - 8)!r}",
             f"Seed {report.seed} (sample i of each set uses seed {report.seed} + i, unless the "
             f"set names its own) · {report.samples_per_set} sample(s) per set"]
    for i, settings in enumerate(report.sets):
        spec = report.spec(i) or "the defaults"
        lines.append(f"  {report.label(i)}  {spec}  —  {describe(settings)}")
    if report.error:
        lines.append(f"Stopped early: {report.error}")
    elif report.cancelled:
        lines.append("Stopped before the end: the samples below are those that finished.")
    lines += ["", "Sample 1: " + divergence_line(report, 0), ""]
    lines += transcripts(report, width, 0)
    if report.samples_per_set > 1:
        stats = report.stats()
        lines += ["", f"Per set, over {report.samples_per_set} samples (means over every "
                      "generated token):"]
        lines += ["  " + row for row in stats_table(stats)]
        diverged = [report.divergence(n) for n in range(report.samples_per_set)]
        steps = [d.step + 1 for d in diverged if d is not None]
        if steps:
            lines.append(f"  The sets diverge in {len(steps)} of {report.samples_per_set} "
                         f"samples, at step {min(steps)} earliest, {max(steps)} latest.")
        for s in stats:
            if not s.samples:
                continue
            lines += ["", f"{s.label}: {s.distinct} distinct continuation(s) of {s.samples}"]
            for c in s.continuations[:LISTED]:
                lines.append(f"  {c.count:>4} × {_one_line(c.text, width - 10)!r}")
            if s.distinct > LISTED:
                lines.append(f"  … and {s.distinct - LISTED} more")
    return "\n".join(lines)
