"""The chart's timeline marks where a reasoning model's thinking ends and its answer begins: the
step that completes `</think>`, even when the marker is split across tokens; a new reply, a
reply without thinking and a reset clear it."""

from __future__ import annotations

from typing import Any

import pytest

from desktop.ui.chart.timeline import Timeline
from tests.ui.conftest import fake_step

pytestmark = pytest.mark.usefixtures("no_dangling")


def feed(timeline: Timeline, pieces: list[str]) -> None:
    for i, text in enumerate(pieces):
        timeline.append(fake_step(i, text))
    timeline.refresh()


def test_the_boundary_is_marked_where_the_thinking_block_closes(qtbot: Any) -> None:
    timeline = Timeline()
    qtbot.addWidget(timeline)
    feed(timeline, ["<think>", "Greet", " back.", "</", "think", ">", "\n\n", "Hello", "!"])
    assert timeline.boundary == 5  # the step that completed the marker
    assert timeline.boundary_line.isVisible()
    assert timeline.boundary_line.value() == 5.5
    feed(timeline, ["Just", " an", " answer", "."])  # a new reply from step 0
    assert timeline.boundary is None
    assert not timeline.boundary_line.isVisible()
    feed(timeline, ["<think>", "hm", "</think>", "ok"])
    assert timeline.boundary == 2
    timeline.reset()
    assert timeline.boundary is None
    assert not timeline.boundary_line.isVisible()
