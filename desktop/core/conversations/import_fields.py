"""The field checks under a conversation import (`import_check`): the limits, a JSON value in a
few words for an error message, and `FieldChecker`, which collects problems as "path: what is
wrong" and checks one text, time or id field, giving a default when it is bad so the check goes
on and every problem is found in one pass. Pure; runs on whatever thread checks the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from desktop.core.conversations.records import EARLIEST_TIME, LATEST_TIME

MAX_TITLE = 1_000  # characters
MAX_NAME = 4_096  # a model path, a template id, a short metadata text
MAX_TEXT = 16 * 1024 * 1024  # a message, a system prompt
MAX_PIECE = 4_096  # one token's text
MAX_MESSAGES = 1_000_000
MAX_STEPS = 1_048_576  # per reply
MAX_STAGES = 32
MAX_INT = 2**63  # ids and counts are 64-bit integers wherever they end up
MAX_LISTED = 200  # problems kept in the error; the rest are counted
MAX_SHOWN = 20  # problems in its one-line-per-problem text


def shown(value: Any) -> str:
    """A JSON value as a short phrase for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return ("Infinity" if value > 0 else "-Infinity") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        digits = str(value) if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
        return digits
    if isinstance(value, str):
        cut = value[:40]
        return json.dumps(cut, ensure_ascii=False) + ("…" if len(value) > 40 else "")
    if isinstance(value, list):
        return f"a list of {len(value):,}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int and -MAX_INT <= value < MAX_INT


def is_number(value: Any) -> TypeGuard[float]:
    return type(value) in (int, float) and math.isfinite(value)


class FieldChecker:
    def __init__(self) -> None:
        self.listed: list[str] = []
        self.total = 0

    def bad(self, path: str, what: str) -> None:
        self.total += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(f"{path}: {what}")

    def expected(self, path: str, what: str, value: Any) -> None:
        self.bad(path, f"expected {what}, got {shown(value)}")

    # --- one field of an object; a missing key or null gives `default` ---

    def text(self, d: Mapping[str, Any], key: str, path: str, limit: int,
             default: str = "", required: bool = False) -> str:
        value = d.get(key)
        if value is None:
            if required:
                self.bad(f"{path}.{key}", "missing")
            return default
        if type(value) is not str:
            self.expected(f"{path}.{key}", "text", value)
            return default
        if len(value) > limit:
            self.bad(f"{path}.{key}", f"{len(value):,} characters, more than {limit:,}")
            return default
        return value

    def time(self, d: Mapping[str, Any], key: str, path: str, default: float) -> float:
        value = d.get(key)
        if value is None:
            return default
        if not (is_number(value) and EARLIEST_TIME <= value < LATEST_TIME):
            self.expected(f"{path}.{key}", "a time between 1970 and 3000 (seconds since 1970)",
                          value)
            return default
        return float(value)

    def ident(self, d: Mapping[str, Any], key: str, path: str,
              required: bool = False) -> int | None:
        value = d.get(key)
        if value is None:
            if required:
                self.bad(f"{path}.{key}", "missing")
            return None
        if not is_int(value):
            self.expected(f"{path}.{key}", "a whole number", value)
            return None
        return int(value)
