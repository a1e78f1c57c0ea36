"""The steps of an imported reply checked row by row (`import_check` runs this on every reply):
each row's fields, its stages and their candidates, as `records.step_rows` writes them. A row
that is right is kept as it is and stored re-encoded (several times cheaper than rebuilding
StepRecords); keys the format does not have are dropped, so nothing unchecked is stored. Pure.
"""

from __future__ import annotations

from typing import Any

from desktop.core.conversations.import_fields import (
    MAX_NAME,
    MAX_PIECE,
    MAX_STAGES,
    FieldChecker,
    is_int,
    is_number,
)
from desktop.core.sampling import MAX_TOP_N

_MISSING = object()


class StepChecker(FieldChecker):
    def steps(self, rows: list[Any], path: str) -> list[dict[str, Any]]:
        """The rows, checked, as they will be stored (`records.encode_step_rows`): re-encoding
        them directly is several times cheaper than building StepRecords to serialise again."""
        checked: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            good = self.step(row, f"{path}[{i}]")
            if good is not None:
                checked.append(good)
        return checked

    def step(self, row: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(row, dict):
            self.expected(path, "an object", row)
            return None
        before = self.total
        for key, kind, required in _STEP_FIELDS:
            value = row.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    self.bad(f"{path}.{key}", "missing")
            elif not _fits(value, kind):
                self.expected(f"{path}.{key}", _EXPECTED[kind], value)
        stages = row.get("stages", _MISSING)
        if not isinstance(stages, list) or len(stages) > MAX_STAGES:
            self.expected(f"{path}.stages", f"a list of at most {MAX_STAGES} stages",
                          "nothing" if stages is _MISSING else stages)
            stages = []
        clean = row.keys() <= _STEP_KEYS
        for j, s in enumerate(stages):
            clean = self.stage(s, f"{path}.stages[{j}]") and clean
        if self.total != before:
            return None
        return row if clean else _cleaned(row)

    def stage(self, s: Any, path: str) -> bool:
        """Check one stage of a step; False when it (or a candidate) has keys to drop."""
        if not isinstance(s, dict):
            self.expected(path, "an object", s)
            return True
        self.text(s, "name", path, MAX_NAME, required=True)
        kept, mass, top = s.get("kept"), s.get("mass"), s.get("top", [])
        if not _fits(kept, "count"):
            self.expected(f"{path}.kept", _EXPECTED["count"], kept)
        if not _fits(mass, "amount"):
            self.expected(f"{path}.mass", _EXPECTED["amount"], mass)
        if not isinstance(top, list) or len(top) > MAX_TOP_N:
            self.expected(f"{path}.top", f"a list of at most {MAX_TOP_N}", top)
            return True
        clean = s.keys() <= _STAGE_KEYS
        for k, t in enumerate(top):  # the hot loop: 50 candidates x 7 stages a token
            if isinstance(t, dict):
                token, p, piece = t.get("id"), t.get("p"), t.get("text", "")
                if (is_int(token) and is_number(p) and p >= 0 and type(piece) is str
                        and len(piece) <= MAX_PIECE):
                    if not t.keys() <= _CANDIDATE_KEYS:
                        clean = False
                    continue
            self.candidate(t, f"{path}.top[{k}]")
        return clean

    def candidate(self, t: Any, path: str) -> None:
        """Say what is wrong with one entry of a stage's top list (the slow path)."""
        if not isinstance(t, dict):
            self.expected(path, "an object", t)
            return
        if not is_int(t.get("id")):
            self.expected(f"{path}.id", "a whole number", t.get("id"))
        p = t.get("p")
        if not (is_number(p) and p >= 0):
            self.expected(f"{path}.p", "a probability (a finite number ≥ 0)", p)
        self.text(t, "text", path, MAX_PIECE)


# A step row as `records.step_rows` writes it: (key, kind, required).
_STEP_FIELDS = (("step", "count", True), ("token_id", "integer", True), ("text", "piece", True),
                ("piece", "piece", True), ("prob", "amount", True), ("raw_prob", "amount", True),
                ("raw_rank", "count", True), ("entropy_raw", "number", True),
                ("entropy_final", "number", True), ("n_vocab", "count", False),
                ("position", "count", False), ("sample_ms", "amount", False),
                ("decode_ms", "amount", False), ("replayed", "flag", False),
                ("draft_token", "integer", False), ("draft_piece", "piece", False))
_STEP_KEYS = frozenset({key for key, _, _ in _STEP_FIELDS} | {"stages"})
_STAGE_KEYS = frozenset({"name", "kept", "mass", "top"})
_CANDIDATE_KEYS = frozenset({"id", "text", "p"})
_EXPECTED = {"count": "a whole number ≥ 0", "integer": "a whole number",
             "piece": f"text of at most {MAX_PIECE:,} characters",
             "amount": "a finite number ≥ 0", "number": "a finite number",
             "flag": "true or false"}


def _fits(value: Any, kind: str) -> bool:
    if kind == "count":
        return is_int(value) and value >= 0
    if kind == "integer":
        return is_int(value)
    if kind == "piece":
        return type(value) is str and len(value) <= MAX_PIECE
    if kind == "amount":
        return is_number(value) and value >= 0
    if kind == "number":
        return is_number(value)
    return type(value) is bool


def _cleaned(row: dict[str, Any]) -> dict[str, Any]:
    """A checked step row without the keys the format does not have (the slow path: only a
    file written by something else has them), so nothing unchecked is stored."""
    stages = [{**{k: s[k] for k in _STAGE_KEYS - {"top"} if k in s},
               "top": [{k: t[k] for k in _CANDIDATE_KEYS if k in t} for t in s.get("top", [])]}
              for s in row["stages"]]
    return {**{k: row[k] for k in _STEP_KEYS - {"stages"} if k in row}, "stages": stages}
