"""The chart dock's kept steps (`step_history`): the newest `limit` only, and a step number that
goes back (a new generation or branch) drops the steps it replaces."""

from __future__ import annotations

from desktop.core.steps import StepRecord
from desktop.ui.chart.step_history import StepHistory


def _record(step: int, token_id: int = 1) -> StepRecord:
    return StepRecord(step=step, token_id=token_id, piece="x", text="x", prob=1.0, raw_prob=1.0,
                      raw_rank=1, entropy_raw=0.0, entropy_final=0.0, stages=())


def test_only_the_newest_steps_are_kept() -> None:
    history = StepHistory(limit=3)
    for step in range(5):
        history.add(_record(step))
    assert len(history) == 3
    assert history.get(1) is None
    assert [history.get(s).step for s in (2, 3, 4)] == [2, 3, 4]  # type: ignore[union-attr]


def test_a_step_number_going_back_drops_what_it_replaces() -> None:
    history = StepHistory(limit=10)
    for step in range(4):
        history.add(_record(step))
    branch = _record(2, token_id=7)
    history.add(branch)
    assert history.get(2) is branch
    assert history.get(3) is None
    assert history.get(1) is not None
    history.clear()
    assert len(history) == 0
    assert history.get(0) is None
