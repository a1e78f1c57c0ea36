"""StepHistory: the full StepRecords the chart dock keeps so a past step can be shown again.

A record with its stages and pieces is ~22 KiB (Gemma, top-50), so only the newest `limit` are
kept; older steps keep just their two timeline numbers (the timeline holds those). Step numbers
that go back mean a new generation or branch: the steps from there on no longer apply and are
dropped. Plain Python, used on the GUI thread by `chart_dock`.
"""

from __future__ import annotations

from collections import OrderedDict

from desktop.core.steps import StepRecord

HISTORY_LIMIT = 2000


class StepHistory:
    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self.limit = limit
        self._records: OrderedDict[int, StepRecord] = OrderedDict()

    def add(self, record: StepRecord) -> None:
        """Keep `record` as the newest step, dropping what it replaces and what overflows."""
        if self._records and record.step <= next(reversed(self._records)):
            for step in [s for s in self._records if s >= record.step]:
                del self._records[step]
        self._records[record.step] = record
        if len(self._records) > self.limit:
            self._records.popitem(last=False)

    def get(self, step: int) -> StepRecord | None:
        return self._records.get(step)

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
