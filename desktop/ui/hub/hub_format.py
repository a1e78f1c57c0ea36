"""How the Hub browser words things: counts, dates, parameter counts read from a repo's name,
licence and access, a model unit's description, and the fit verdict for a unit.

Plain functions without Qt, so they are cheap to test; any thread (the widgets call them on the
GUI thread). The parameter count shown is the Hub's (safetensors or GGUF metadata); for repos
the Hub has none for, the size written in the name stands in.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from desktop.core import fit
from desktop.core.downloads.store import DownloadJob
from desktop.core.hardware import HardwareInfo
from desktop.core.hub import quant
from desktop.core.hub.client import ModelSummary, ModelUnit
from desktop.core.model_info import LoadSettings

__all__ = [
    "FILE_SIZES",
    "PARAM_RANGES",
    "QUANT_CHOICES",
    "access_text",
    "format_count",
    "format_params",
    "format_updated",
    "model_path",
    "param_count",
    "param_limits",
    "unit_fit",
    "unit_kind_text",
]

# "8B", "0.5b", "270M", "1.1B" as a whole word; "8x7B" (mixture of experts) multiplies. A word
# glued to a letter before it ("A3B" in Qwen3-30B-A3B: active parameters) is not the size.
_PARAMS = re.compile(
    r"(?<![A-Za-z0-9.])(?:(?P<experts>\d+)x)?(?P<n>\d+(?:\.\d+)?)(?P<unit>[BbMm])(?![A-Za-z0-9])"
)
_UNIT = {"b": 1e9, "m": 1e6}

# The choices of the browser's "Parameters" filter (the Hub applies it): label → low, high.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "Any parameter count": (0.0, float("inf")),
    "Under 1B": (0.0, 1e9),
    "1B – 4B": (1e9, 4.5e9),
    "4B – 9B": (4.5e9, 9.5e9),
    "9B – 15B": (9.5e9, 15.5e9),
    "15B – 35B": (15.5e9, 35.5e9),
    "Over 35B": (35.5e9, float("inf")),
}


# The browser's "largest file" filter (applied to each page by the core): label → bytes.
FILE_SIZES: dict[str, int | None] = {
    "Any file size": None,
    "Files up to 1 GB": 10**9,
    "Files up to 2 GB": 2 * 10**9,
    "Files up to 5 GB": 5 * 10**9,
    "Files up to 10 GB": 10**10,
    "Files up to 20 GB": 2 * 10**10,
    "Files up to 50 GB": 5 * 10**10,
}
# Offered in the quant box (which also takes any label typed in).
QUANT_CHOICES = ("Any quant", "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q8_0", "IQ4_XS", "F16")


def param_count(repo_id: str) -> float | None:
    """Parameters as written in the repo's name (the part after the owner), or None. The
    largest mention wins: "Qwen3-30B-A3B" is 30B, "tiny-llama-1.1B-chat-v0.3" 1.1B."""
    name = repo_id.rsplit("/", 1)[-1]
    found = []
    for m in _PARAMS.finditer(name):
        value = float(m["n"]) * _UNIT[m["unit"].lower()]
        if m["experts"]:
            value *= int(m["experts"])
        found.append(value)
    return max(found) if found else None


def param_limits(label: str) -> tuple[int | None, int | None]:
    """The range named `label` as SearchQuery's min_params / max_params (None: no bound)."""
    low, high = PARAM_RANGES.get(label, PARAM_RANGES["Any parameter count"])
    return (int(low) or None, None if high == float("inf") else int(high))


def format_params(n: float | None) -> str:
    if n is None:
        return ""
    if n >= 1e9:
        return f"{n / 1e9:.3g}B"
    return f"{n / 1e6:.3g}M"


def format_count(n: int | None) -> str:
    """1234 → '1.2k', 3_400_000 → '3.4M'; None → '–'."""
    if n is None:
        return "–"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            value = n / div
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return str(n)


def format_updated(iso: str | None, now: datetime | None = None) -> str:
    """'today', '3 days ago' within a month, else the date (2025-03-01)."""
    if not iso:
        return "–"
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso[:10]
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    days = ((now or datetime.now(timezone.utc)) - when).days
    if 0 <= days < 1:
        return "today"
    if 1 <= days < 31:
        return "yesterday" if days == 1 else f"{days} days ago"
    return when.date().isoformat()


def access_text(summary: ModelSummary) -> str:
    """The licence, and whether the repo is gated or private: 'llama3 · gated'."""
    parts = [summary.license or "no licence tag"]
    if summary.private:
        parts.append("private")
    if summary.gated:
        parts.append("gated" if summary.gated == "auto" else "gated (approval)")
    return " · ".join(parts)


def unit_kind_text(unit: ModelUnit) -> str:
    """What a unit is, for its row: '3 shards', 'safetensors · 7 files', 'vision projector'."""
    n = len(unit.files)
    if unit.kind == quant.KIND_PROJECTOR:
        return "vision projector"
    if unit.kind == quant.KIND_SAFETENSORS:
        return f"safetensors · {n} files"
    if unit.kind == quant.KIND_GGUF:
        return f"GGUF · {n} shards" if n > 1 else "GGUF"
    return f"{n} files" if n > 1 else "file"


def unit_fit(
    unit: ModelUnit, settings: LoadSettings, hardware: HardwareInfo | None,
    available: int | None,
) -> fit.FitEstimate | None:
    """The fit estimate for loading `unit` with `settings`, or None for what is not a model on
    its own (a projector) or has no size. No metadata is read before downloading, so the KV
    cache is the size-based guess (`rough`); `available` is free RAM now."""
    size = unit.size
    if unit.kind == quant.KIND_PROJECTOR or unit.kind == quant.KIND_OTHER or size is None:
        return None
    vram = hardware.free_vram_bytes if hardware is not None and hardware.gpus else None
    return fit.estimate_fit(size, settings, None, available, vram_available=vram or None)


def model_path(job: DownloadJob) -> str:
    """The file to load for a finished job: its (first) GGUF, else the folder it went to."""
    ggufs = sorted((f for f in job.files if f.path.lower().endswith(".gguf")
                    and not quant.is_projector(f.path)), key=lambda f: f.path)
    if ggufs:
        shard = [f for f in ggufs if (s := quant.shard_name(f.path)) is not None and s.index == 1]
        return str((shard or ggufs)[0].destination(job.dest_dir))
    return str(Path(job.dest_dir))
