"""Search filters beyond what the Hub's model list can apply, and the words people type for them.

The Hub filters by parameter count itself (`num_parameters=min:1B,max:8B`, the same syntax as
its web page; the count is the one it shows, from the repo's safetensors or GGUF metadata).
It cannot filter by file size or by the quant a repo offers, so those are applied here to each
page of results the Hub returns: a page may then show fewer models than asked for, and the
browser and the CLI say "filtered on this page". The quant is read from the file names the
list gives (`expand=siblings`); a file size needs the repo's file metadata, one request per
candidate repo (see HubClient.search).

Pure functions and frozen values; any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingface_hub import ModelInfo

from desktop.core.hub import quant

__all__ = [
    "PageFilter",
    "format_hub_count",
    "num_parameters_param",
    "param_count",
    "parse_params",
    "parse_size",
    "quants_of",
]

_NUMBER = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]*)\s*$")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}
_PARAM_UNITS = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """'500MB' → 500_000_000, '5GB' → 5e9, '1.5GiB' → 1.5 × 2**30, '4096' → bytes.
    Raises ValueError with a sentence saying what is accepted."""
    return _parse(text, _SIZE_UNITS, "a file size: write a number with a unit, like 500MB, 5GB "
                  "or 1.5GiB (MB and GB are powers of 1000)")


def parse_params(text: str) -> int:
    """'270M' → 270_000_000, '7B' → 7e9, '1.5B', '500K'. Raises ValueError."""
    return _parse(text, _PARAM_UNITS, "a parameter count: write a number with K, M, B or T, "
                  "like 270M, 7B or 1.5B")


def _parse(text: str, units: dict[str, int], what: str) -> int:
    m = _NUMBER.match(text)
    unit = m["unit"].lower() if m else ""
    if m is None or unit not in units:
        raise ValueError(f"cannot read {text!r} as {what}")
    return int(float(m["n"]) * units[unit])


def format_hub_count(n: int) -> str:
    """A parameter count the way the Hub's num_parameters syntax writes it: the largest unit
    that divides it exactly (8B, 270M, 1500M), else the plain number."""
    for suffix, unit in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def num_parameters_param(low: int | None, high: int | None) -> str | None:
    """The Hub's `num_parameters` value for a range ('min:1B,max:8B'), or None for none."""
    parts = []
    if low is not None:
        parts.append(f"min:{format_hub_count(low)}")
    if high is not None:
        parts.append(f"max:{format_hub_count(high)}")
    return ",".join(parts) or None


@dataclass(frozen=True)
class PageFilter:
    """The filters applied to each page here: a quant the repo must offer, and a size range
    (bytes) that one of its models (of that quant, when one is asked for) must fall in."""

    quant: str | None = None
    min_size: int | None = None
    max_size: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.quant) or self.needs_sizes

    @property
    def needs_sizes(self) -> bool:
        return self.min_size is not None or self.max_size is not None

    def names(self) -> tuple[str, ...]:
        """Which filters are on, for messages ('quant', 'size')."""
        return tuple(n for n, on in (("quant", bool(self.quant)), ("size", self.needs_sizes))
                     if on)

    def quant_ok(self, quants: tuple[str, ...]) -> bool:
        return not self.quant or self.quant.upper() in {q.upper() for q in quants}

    def size_ok(self, size: int) -> bool:
        return (self.min_size is None or size >= self.min_size) and \
            (self.max_size is None or size <= self.max_size)

    def storage_rules_out(self, used_storage: int | None) -> bool:
        """The repo's whole storage is below the minimum: no model in it can reach it."""
        return (self.min_size is not None and used_storage is not None
                and used_storage < self.min_size)


def param_count(info: ModelInfo) -> int | None:
    """The parameter count the Hub gives: safetensors metadata, else GGUF metadata."""
    if info.safetensors is not None and info.safetensors.total:
        return int(info.safetensors.total)
    total = (info.gguf or {}).get("total")
    return int(total) if isinstance(total, int | float) and total > 0 else None


def quants_of(info: ModelInfo) -> tuple[str, ...]:
    """Quant labels of the model files the listing names (projectors left out)."""
    labels = {
        label for s in info.siblings or ()
        if quant.is_weights(s.rfilename) and not quant.is_projector(s.rfilename)
        and (label := quant.quant_label(s.rfilename)) is not None
    }
    return tuple(sorted(labels))
