"""The Compare view driven like a person would, on the real engine with the shipped Gemma model:
two sets run on one seed, both transcripts shown, the first divergent step marked, a click on a
token overlays that step's distributions, N samples fill the plots, Stop keeps what finished.
A fake engine covers the refusals and a crash mid-run; the main window opens it from View."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QTextCursor

from desktop.core.compare import CompareReport
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.ui.compare.step_chart import RAW
from desktop.ui.compare.transcripts import DIVERGE_COLOR, TranscriptColumn
from desktop.ui.compare.view import CompareView
from desktop.ui.engine_service import EngineService
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.threads import TEST_THREADS
from tests.ui.conftest import FakeEngine

pytestmark = [
    pytest.mark.usefixtures("no_dangling"),
    # The offscreen platform says so when a window is raised; not our warning.
    pytest.mark.qt_log_ignore(r"This plugin does not support raise\(\)"),
]

PANEL = SamplerSettings(temperature=0.0, seed=7, top_n=20)


@pytest.fixture
def engine(qtbot: Any, home: Path, gemma_path: Path) -> Iterator[EngineService]:
    service = EngineService()
    with qtbot.waitSignal(service.sig_model_loaded, timeout=120_000):
        service.load(gemma_path, LoadSettings(n_ctx=1024, n_threads=TEST_THREADS))
    yield service
    service.shutdown()


def make_view(qtbot: Any, engine: EngineService, panel: SamplerSettings = PANEL) -> CompareView:
    view = CompareView(engine, lambda: panel)
    qtbot.addWidget(view)
    view.resize(1200, 700)
    view.show()
    return view


def run(qtbot: Any, view: CompareView, prompt: str = "Once upon a time",
        tokens: int = 8) -> CompareReport:
    view.prompt.setPlainText(prompt)
    view.max_tokens.setValue(tokens)
    with qtbot.waitSignal(view.runner.sig_finished, timeout=300_000) as done:
        qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    report = done.args[0]
    assert isinstance(report, CompareReport)
    return report


def anchor_fragment(column: TranscriptColumn, step: int) -> Any:
    """The text fragment of one step's anchor in a transcript column."""
    block = column.browser.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == f"step:{step}":
                return fragment
            it += 1
        block = block.next()
    raise AssertionError(f"no anchor for step {step}")


def click_step(qtbot: Any, column: TranscriptColumn, step: int) -> None:
    fragment = anchor_fragment(column, step)
    cursor = QTextCursor(column.browser.document())
    cursor.setPosition(fragment.position() + max(1, fragment.length() // 2))
    rect = column.browser.cursorRect(cursor)
    qtbot.mouseClick(column.browser.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(rect.left() - 2, rect.center().y()))


def final_heights(view: CompareView, records: list[StepRecord]) -> list[list[float]]:
    return [[r.stages[-1].prob_of(t) or 0.0 for t in view.chart.tokens] for r in records]


@pytest.mark.engine
def test_two_sets_side_by_side_with_the_divergence_marked_and_steps_overlaid(
        qtbot: Any, engine: EngineService) -> None:
    view = make_view(qtbot, engine)
    # The sets start from the panel: A as it is (greedy), B at a contrasting temperature.
    assert [e.settings().temperature for e in view.editors] == [0.0, 1.5]
    assert view.seed.value() == 7
    report = run(qtbot, view)
    assert not report.cancelled
    assert report.error == ""
    greedy, hot = report.sample(0, 0), report.sample(1, 0)
    assert greedy is not None
    assert hot is not None
    assert greedy.seed == hot.seed == 7
    assert [c.text() for c in view.columns.columns] == [greedy.text, hot.text]
    assert "Done: 2 generations, seed 7." in view.status.text()
    assert view.run_button.isEnabled()

    d = report.divergence(0)
    assert d is not None
    assert view.columns.divergence == d.step
    assert f"Diverges at step {d.step + 1}" in view.divergence_label.text()
    for column in view.columns.columns:  # bold red at the divergent step, plain before it
        marked = anchor_fragment(column, d.step).charFormat()
        assert marked.foreground().color().name() == DIVERGE_COLOR
        assert marked.fontWeight() >= 700
        if d.step > 0:
            assert anchor_fragment(column, 0).charFormat().foreground().color().name() != \
                DIVERGE_COLOR
    # The divergent step is shown at once: both sets' distributions, each chosen token among them.
    assert view.selected == d.step
    records = [greedy.steps[d.step], hot.steps[d.step]]
    assert {greedy.token_ids[d.step], hot.token_ids[d.step]} <= set(view.chart.tokens)
    assert view.chart.heights == final_heights(view, records)  # the records, as they are
    assert view.chart.heights[0][view.chart.tokens.index(greedy.token_ids[d.step])] == \
        pytest.approx(1.0)

    # A click on a token of set B shows that step in both sets.
    last = len(hot.steps) - 1
    click_step(qtbot, view.columns.columns[1], last)
    assert view.selected == last
    records = [greedy.steps[last] if last < len(greedy.steps) else None, hot.steps[last]]
    assert "Step" in view.chart.getPlotItem().titleLabel.text
    assert view.chart.heights[1] == pytest.approx(final_heights(view, [hot.steps[last]])[0])
    # The raw softmax of a step before the divergence: the same context, the same bars.
    view.stage_pick.setCurrentIndex(view.stage_pick.findData(RAW))
    view.select_step(0)
    assert view.chart.heights[0] == pytest.approx(view.chart.heights[1], abs=1e-6)
    assert view.chart.heights[0] == pytest.approx(
        [greedy.steps[0].stages[0].prob_of(t) or 0.0 for t in view.chart.tokens])


@pytest.mark.engine
def test_samples_fill_the_plots_and_stop_keeps_what_finished(
        qtbot: Any, engine: EngineService) -> None:
    view = make_view(qtbot, engine, PANEL.replace(temperature=0.7))
    view.samples.setValue(3)
    report = run(qtbot, view, tokens=4)
    assert len(report.samples) == 6
    assert view.results.isTabEnabled(1)
    stats = report.stats()
    assert [s.samples for s in stats] == [3, 3]
    firsts = [{t.token_id: t.count / 3 for t in s.first_tokens} for s in stats]
    shown = view.plots.first_heights
    assert len(shown) == 2
    for heights, share in zip(shown, firsts):
        assert sum(heights) == pytest.approx(sum(share.values()))  # ≤ 8 tokens: all shown
    rows = view.plots.table.rowCount()
    assert rows == sum(s.distinct for s in stats)
    # Another sample's transcripts: the picker shows sample 3 of each set.
    view.sample_pick.setValue(3)
    third = [report.sample(i, 2) for i in range(2)]
    assert [c.text() for c in view.columns.columns] == [s.text for s in third if s is not None]

    # Stop after the first finished sample: the comparison ends with what it has.
    view.samples.setValue(5)
    view.max_tokens.setValue(6)
    with qtbot.waitSignal(view.runner.sig_finished, timeout=300_000) as done:
        with qtbot.waitSignal(view.runner.sig_sample_finished, timeout=300_000):
            qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
        assert not view.run_button.isEnabled()
        qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    stopped = done.args[0]
    assert stopped.cancelled
    assert 1 <= len(stopped.samples) < 10
    assert "Stopped" in view.status.text()
    assert view.run_button.isEnabled()
    assert not engine.busy


def test_refusals_in_words_and_a_crash_mid_run(qtbot: Any, home: Path) -> None:
    fake = FakeEngine(reply="one two three four five six", interval_ms=5)
    view = make_view(qtbot, fake)
    view.prompt.setPlainText("")
    view.run()
    assert "Type a prompt first" in view.status.text()
    view.prompt.setPlainText("Hello")
    view.run()
    assert "No model is loaded" in view.status.text()
    with qtbot.waitSignal(fake.sig_model_loaded):
        fake.load("/m/gemma.gguf", LoadSettings())
    # Sets can be added (a copy of the last) and removed, down to two.
    c = view.add_set()
    assert c is not None
    assert [e.label for e in view.editors] == ["A", "B", "C"]
    view.editors[0].remove_button.click()
    assert [e.label for e in view.editors] == ["A", "B"]
    assert not view.editors[0].remove_button.isVisibleTo(view)
    with qtbot.waitSignal(view.runner.sig_step_added):
        view.run()
    assert "Generating 1 of 2" in view.status.text()
    with qtbot.waitSignal(view.runner.sig_finished) as done:
        fake.crash()
    assert done.args[0].error.startswith("The engine process was killed")
    assert "Stopped after 0 generation(s): The engine process was killed" in view.status.text()
    assert view.run_button.isEnabled()
    assert fake.generated[0][1].seed == view.seed.value()  # sent with the comparison's seed


def test_the_main_window_opens_compare_from_the_view_menu(
        qtbot: Any, home: Path, tmp_path: Path) -> None:
    window = MainWindow(AppSettings(), engine=FakeEngine(), models_dir=tmp_path,
                        with_services=False)
    qtbot.addWidget(window)
    window.sampling_panel.set_settings(SamplerSettings(temperature=0.4, top_k=12))
    [action] = [a for a in window.findChildren(QAction) if a.text() == "Co&mpare settings…"]
    action.trigger()
    compare = window.compare_window
    assert compare is not None
    assert compare.isVisible()
    first = compare.view.editors[0].settings()
    assert (first.temperature, first.top_k) == (0.4, 12)  # from the Sampling panel
    window.close()


def test_plots_and_chart_draw_what_the_records_say_even_when_a_set_wrote_nothing(
        qtbot: Any) -> None:
    from desktop.core.compare import Sample, set_stats
    from desktop.core.steps import StageView
    from desktop.ui.compare.sample_plots import SamplePlots
    from desktop.ui.compare.step_chart import StepOverlayChart, overlay_tokens
    from desktop.ui.compare.view import SET_COLORS

    def rec(token: int, ids: tuple[int, ...], probs: tuple[float, ...]) -> StepRecord:
        final = StageView("top_k", len(ids), 1.0, ids, probs)
        return StepRecord(step=0, token_id=token, text="t", piece="t", prob=0.5, raw_prob=0.5,
                          raw_rank=1, entropy_raw=1.0, entropy_final=1.0,
                          stages=(StageView("raw", 30, 1.0, ids, probs), final),
                          pieces={i: f"w{i}" for i in ids})

    many = tuple(range(20))
    probs = tuple(0.5 ** (i + 1) for i in many)
    a, b = rec(19, many, probs), rec(0, many[:3], (0.6, 0.3, 0.1))
    tokens = overlay_tokens([a, b], "final", limit=5)
    assert len(tokens) == 5
    assert 19 in tokens  # a's chosen token, though far down its list, is always drawn
    chart = StepOverlayChart()
    qtbot.addWidget(chart)
    chart.show_step(0, [a, None], ["A", "B"], SET_COLORS[:2])
    assert chart.heights[1] == [0.0] * len(chart.tokens)  # B had ended: nothing drawn for it
    assert chart.heights[0] == [a.stages[-1].prob_of(t) for t in chart.tokens]

    plots = SamplePlots()
    qtbot.addWidget(plots)
    stats = (set_stats("A", [Sample(0, 0, 7, (a,), "t", "length")]),
             set_stats("B", [Sample(1, 0, 7, (), "", "stop")]))
    plots.show_stats(stats, SET_COLORS[:2])
    assert plots.first_heights == [[1.0], [0.0]]
    assert plots.table.rowCount() == 2
    assert plots.table.item(1, 2).text() == "∅ (ended at once)"


def test_the_step_charts_message_wraps_to_the_plot(qtbot: Any) -> None:
    """The first message ran off both sides of a 500-pixel plot at 1280x720."""
    from desktop.ui.compare.step_chart import StepOverlayChart

    chart = StepOverlayChart()
    qtbot.addWidget(chart)
    chart.resize(500, 400)
    chart.show()
    qtbot.waitExposed(chart)
    view = chart.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: view.width() > 0)
    text = chart.message.textItem
    assert "Run a comparison" in chart.message.toPlainText()
    assert 0 < text.boundingRect().width() <= view.width()
