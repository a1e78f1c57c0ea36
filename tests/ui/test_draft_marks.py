"""Speculative decoding made visible: the reply's token view underlines the tokens the draft
proposed and the model accepted, and the chart marks each step's proposal against the target's
distribution, with the header saying accepted or rejected.

The StepRecords are real: the ready Gemma 3 270M generating with n-gram (prompt-lookup) drafting
on a prompt that repeats itself, so some proposals are accepted and some rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCharFormat
from PySide6.QtWidgets import QMainWindow, QWidget
from pytestqt.qtbot import QtBot

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.core.token_text import token_label
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from desktop.ui.chart import ChartDock
from desktop.ui.chart.draft_marks import ACCEPTED_TEXT, REJECTED_TEXT
from desktop.ui.chat.token_view import DRAFT_LEGEND, TokenView, candidates_text
from tests.threads import TEST_THREADS

pytestmark = [
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
    pytest.mark.usefixtures("no_dangling"),
]

DAYS = (
    "The days of the week are Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, "
    "Sunday. The days of the week are"
)
SETTINGS = SamplerSettings(temperature=0.0, seed=3, max_tokens=40)


@pytest.fixture(scope="module")
def steps(gemma_models_dir: Path) -> list[StepRecord]:
    """A real speculative run: Gemma with n-gram drafting, greedy."""
    from desktop.core.ready_model import ready_model_path

    host = EngineHost()
    try:
        load = host.load(
            ready_model_path(gemma_models_dir),
            LoadSettings(n_ctx=1024, n_threads=TEST_THREADS, draft="ngram"),
        )
        assert isinstance(list(host.wait(load, timeout=120))[-1], P.Loaded)
        records = [
            e.record
            for e in host.wait(host.generate(((DAYS, False),), SETTINGS), timeout=120)
            if isinstance(e, P.Step)
        ]
    finally:
        host.shutdown()
    assert any(r.accepted for r in records)
    assert any(r.draft_token >= 0 and not r.accepted for r in records)
    return records


def underlined_steps(view: TokenView) -> dict[int, bool]:
    """Each token's step (from its anchor) → whether it is drawn underlined."""
    out: dict[int, bool] = {}
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt: QTextCharFormat = fragment.charFormat()
            href = fmt.anchorHref()
            if href.startswith("step:"):
                step = int(href.split(":", 1)[1])
                out[step] = out.get(step, False) or fmt.fontUnderline()
            it += 1
        block = block.next()
    return out


def test_the_token_view_underlines_exactly_the_accepted_drafts(
    qtbot: QtBot, steps: list[StepRecord]
) -> None:
    view = TokenView(steps)
    qtbot.addWidget(view)
    marked = underlined_steps(view)
    # A token that is only line breaks has no fragment: Qt turns it into a block boundary.
    with_text = {r.step for r in steps if r.text.replace("\n", "")}
    assert set(marked) == with_text
    assert {s for s, under in marked.items() if under} == {
        r.step for r in steps if r.accepted and r.step in with_text
    }
    assert DRAFT_LEGEND.split(" · ")[0] in view.toPlainText()

    # The hover card names the proposal: accepted, or rejected with what the model drew.
    rejected = next(r for r in steps if r.draft_token >= 0 and not r.accepted)
    card = candidates_text(rejected)
    proposed = token_label(rejected.pieces[rejected.draft_token])
    assert f"draft proposed ‘{proposed}’" in card
    assert f"the model drew ‘{token_label(rejected.piece)}’" in card
    accepted = next(r for r in steps if r.accepted)
    assert candidates_text(accepted).endswith("accepted")
    assert "draft" not in candidates_text(next(r for r in steps if r.draft_token < 0))

    # The same reply made without a draft: nothing underlined, no legend.
    plain = TokenView([dataclasses.replace(r, draft_token=-1) for r in steps])
    qtbot.addWidget(plain)
    assert not any(underlined_steps(plain).values())
    assert DRAFT_LEGEND.split(" · ")[0] not in plain.toPlainText()


@pytest.fixture
def dock(qtbot: QtBot) -> Iterator[ChartDock]:
    window = QMainWindow()
    window.setCentralWidget(QWidget())
    dock = ChartDock(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1300, 900)
    qtbot.addWidget(window)
    dock.set_sampler_settings(SETTINGS)
    window.show()
    qtbot.waitExposed(window)
    yield dock
    dock.clear()


def _show(qtbot: QtBot, dock: ChartDock, steps: list[StepRecord], step: int) -> StepRecord:
    dock.select_step(step)
    record = steps[step]
    qtbot.waitUntil(lambda: dock.shown is record, timeout=2000)
    return record


def xs(item: object) -> list[float]:
    return [float(v) for v in item.opts["x"]]  # type: ignore[attr-defined]


def test_the_chart_marks_a_rejected_and_an_accepted_proposal(
    qtbot: QtBot, dock: ChartDock, steps: list[StepRecord], tmp_path: Path
) -> None:
    for record in steps:
        dock.add_step(record)
    dock.paint_now()
    chart = dock.chart

    rejected = next(
        r
        for r in steps
        if r.draft_token >= 0
        and not r.accepted
        and r.draft_token in r.stages[0].ids[: chart.bar_count]
    )
    _show(qtbot, dock, steps, rejected.step)
    at = chart.bar_ids.index(rejected.draft_token)
    assert xs(chart.draft.bar) == [at]
    assert xs(chart.chosen_bar) == [chart.bar_ids.index(rejected.token_id)]
    assert chart.draft.label.toPlainText() == REJECTED_TEXT
    proposed = token_label(rejected.pieces[rejected.draft_token])
    p = rejected.stages[-1].prob_of(rejected.draft_token)
    target = "target p 0, removed by the sampler" if p is None else "target p "
    header = dock.header.text()
    assert f"Draft proposed ‘{proposed}’ ({target}" in header
    assert f"— rejected: the model drew ‘{token_label(rejected.piece)}’" in header
    assert any(t.startswith("draft's proposal") for t in chart.legend.texts())
    dock.grab().save(str(tmp_path / "rejected.png"))

    accepted = next(r for r in steps if r.accepted)
    _show(qtbot, dock, steps, accepted.step)
    i = chart.bar_ids.index(accepted.token_id)
    assert xs(chart.draft.bar) == xs(chart.chosen_bar) == [i]
    assert chart.draft.label.toPlainText() == ACCEPTED_TEXT
    # Stacked above the chosen token's label, inside the plot.
    assert chart.draft.label.pos().y() > chart.chosen_text.pos().y()
    assert chart.draft.label.pos().y() < chart.y_view()[1]
    assert dock.header.text().endswith("— accepted")

    # A step the draft made no proposal for: nothing marked, the band keeps its row.
    none = next(r for r in steps if r.draft_token < 0)
    _show(qtbot, dock, steps, none.step)
    assert xs(chart.draft.bar) == []
    assert chart.draft.label.toPlainText() == ""
    assert "Draft" not in dock.header.text()
    assert chart.draft.rows() == 1
    dock.clear()
    assert chart.draft.rows() == 0


def test_a_proposal_beyond_the_bars_shown_is_said_in_the_header(
    qtbot: QtBot, dock: ChartDock, steps: list[StepRecord]
) -> None:
    base = next(r for r in steps if len(r.stages[0].ids) > 20)
    far = base.stages[0].ids[20]  # the 21st most probable token, a real id of this step
    record = dataclasses.replace(base, draft_token=far)
    dock.add_step(record)
    dock.paint_now()
    dock.bars_spin.setValue(10)
    qtbot.waitUntil(lambda: dock.shown is record, timeout=2000)
    assert xs(dock.chart.draft.bar) == []
    assert dock.header.text().endswith(
        f"— rejected: the model drew ‘{token_label(base.piece)}’ · not among the 10 bars shown"
    )
