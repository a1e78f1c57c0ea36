"""The chart's what-if: the recorded step with the same step replayed under other settings drawn
over it, replays coalesced while a slider moves, the auto-scaled y axis, and labels that never
print over each other. Synthetic StepRecords (shaped like the engine's, from test_chart) drive
the dock offscreen; the last test runs the real window, engine and Gemma model."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QWidget
from pytestqt.qtbot import QtBot

from desktop.core import paths
from desktop.core.conversations.store import ConversationStore
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import feeding_stage, stage_changed
from desktop.ui.chart import ChartDock
from desktop.ui.chart.y_axis import linear_ticks, nice_top
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.threads import TEST_THREADS
from tests.ui.test_chart import SETTINGS, heights, make_record, painted, xs

pytestmark = [
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
    pytest.mark.usefixtures("no_dangling"),
]


@pytest.fixture
def dock(qtbot: QtBot) -> Iterator[ChartDock]:
    """The dock in a 1280×720 window, as on a small laptop screen."""
    window = QMainWindow()
    window.setCentralWidget(QWidget())
    dock = ChartDock(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1280, 720)
    window.resizeDocks([dock], [560], Qt.Orientation.Horizontal)
    qtbot.addWidget(window)
    dock.set_sampler_settings(SETTINGS)
    window.show()
    qtbot.waitExposed(window)
    yield dock
    dock.clear()


def greedy_replay(original: StepRecord) -> StepRecord:
    """What the engine answers at temperature 0: only the argmax survives."""
    raw = original.stages[0]
    greedy = StageView("temperature", 1, raw.probs[0], raw.ids[:1], (1.0,))
    return dataclasses.replace(original, stages=(*original.stages[:-1], greedy),
                               prob=1.0 if original.raw_rank == 1 else 0.0, replayed=True)


def test_slider_replays_are_coalesced_and_drawn_over_the_recorded_step(
        qtbot: QtBot, dock: ChartDock) -> None:
    for step in range(4):
        dock.add_step(make_record(step))
    dock.select_step(2)
    original = dock.record_of(2)
    assert original is not None
    top_p_line = dock.chart.cut_lines["top_p"].value()
    requests: list[tuple[int, SamplerSettings]] = []
    dock.sig_replay_requested.connect(lambda step, s: requests.append((step, s)))
    slider = dock.inspector.sliders["temperature"]
    spin = dock.inspector.spins["temperature"]
    assert slider.value() == 16  # 0.8 in steps of 0.05
    for position in (14, 10, 6, 0):  # dragged left, faster than the engine answers
        slider.setValue(position)
    # The first value goes at once; while it is in flight only the latest waits.
    assert requests == [(2, SETTINGS.replace(temperature=0.7))]
    assert spin.value() == pytest.approx(0.0)
    first = dataclasses.replace(original, replayed=True)
    dock.show_replay(first)  # its answer: drawn at once, and the latest goes out
    assert requests[-1] == (2, SETTINGS.replace(temperature=0.0))
    assert len(requests) == 2
    assert dock.what_if.record is first
    assert "T 0.7" in dock.what_if_label.text()

    replayed = greedy_replay(original)
    dock.show_replay(replayed)
    assert len(requests) == 2  # nothing newer was wanted
    # The recorded step stays: bars, header, settings line and cut lines.
    assert dock.shown is original
    assert heights(dock.chart.stage_bars) == pytest.approx(original.stages[-1].probs)
    assert dock.header.text().startswith("Step 2 ")
    assert dock.sampled_label.text().startswith("Sampled with T 0.80")
    assert dock.chart.cut_lines["top_p"].value() == top_p_line
    # The replay is drawn over it, named in the legend and in one line.
    assert xs(dock.chart.what_if_bars) == [0.0]
    assert heights(dock.chart.what_if_bars) == [1.0]
    assert "what-if (T 0)" in dock.chart.legend.texts()
    kept = original.stages[-1].kept
    assert dock.what_if_label.isVisible()
    assert dock.what_if_label.text().startswith(f"What-if: T 0 would keep 1 of {kept} · ‘")
    assert "impossible" in dock.what_if_label.toolTip()
    assert "Replay:" in dock.inspector.status.text()
    dock.show_replay(dataclasses.replace(replayed, step=1))  # stale: another step
    assert dock.what_if.record is replayed

    dock.inspector.original_button.click()  # Reset: the step's own settings, no overlay
    assert spin.value() == pytest.approx(SETTINGS.temperature)
    assert slider.value() == 16
    assert heights(dock.chart.what_if_bars) == []
    assert not dock.what_if_label.isVisible()
    assert "what-if" not in " ".join(dock.chart.legend.texts())
    assert dock.shown is original

    # Moved controls belong to their step: another step and back shows no what-if.
    slider.setValue(4)
    dock.show_replay(replayed)
    assert dock.what_if.record is replayed
    dock.select_step(1)
    dock.select_step(2)
    assert dock.what_if.record is None
    assert slider.value() == 16
    assert dock.replays.target(2, SETTINGS, replayable=True) is None


def test_the_panel_differing_from_a_pinned_step_asks_for_its_overlay(
        qtbot: QtBot, dock: ChartDock) -> None:
    for step in range(3):
        dock.add_step(make_record(step))
    requests: list[tuple[int, SamplerSettings]] = []
    dock.sig_replay_requested.connect(lambda step, s: requests.append((step, s)))
    dock.set_panel_settings(SETTINGS)  # the same knobs: nothing to show
    dock.select_step(1)
    assert requests == []
    # Another seed or length does not reshape a step; top-p does.
    dock.set_panel_settings(SETTINGS.replace(seed=5, max_tokens=9))
    assert requests == []
    dock.set_panel_settings(SETTINGS.replace(top_p=0.5, seed=5))
    assert requests == [(1, SETTINGS.replace(top_p=0.5))]  # the step's own seed and length
    assert "What-if top-p 0.5: replaying" in dock.what_if_label.text()
    # The inspector still shows what the step was sampled with.
    assert dock.inspector.spins["top_p"].value() == pytest.approx(SETTINGS.top_p)
    dock.set_panel_settings(SETTINGS)
    assert not dock.what_if_label.isVisible()


def test_the_wheel_over_an_unfocused_what_if_control_asks_for_no_replay(
        qtbot: QtBot, dock: ChartDock) -> None:
    """Scrolling past the inspector's what-if sliders and boxes moved them (and replayed the
    step): a control takes the wheel only once it has focus, as in the Sampling panel."""
    from tests.ui.test_panels import _wheel

    dock.add_step(make_record(0))
    dock.select_step(0)
    requests: list[tuple[int, SamplerSettings]] = []
    dock.sig_replay_requested.connect(lambda step, s: requests.append((step, s)))
    inspector = dock.inspector
    before = ([s.value() for s in inspector.sliders.values()],
              [s.value() for s in inspector.spins.values()])
    for control in (*inspector.sliders.values(), *inspector.spins.values()):
        _wheel(control)
    assert ([s.value() for s in inspector.sliders.values()],
            [s.value() for s in inspector.spins.values()]) == before
    assert requests == []
    slider = inspector.sliders["temperature"]
    slider.setFocus()
    qtbot.waitUntil(slider.hasFocus)
    _wheel(slider)  # focused: the wheel is the slider's
    assert slider.value() != before[0][list(inspector.sliders).index("temperature")]
    assert len(requests) == 1


def test_auto_y_fits_the_axis_to_the_tallest_bar(qtbot: QtBot, dock: ChartDock) -> None:
    hot = SETTINGS.replace(temperature=1.5)
    record = make_record(4, settings=hot)
    # Flatten it as a high temperature would: every bar a few percent at most.
    flat = tuple(StageView(v.name, v.kept, v.mass, v.ids, tuple(p * 0.1 for p in v.probs))
                 for v in record.stages)
    record = dataclasses.replace(record, stages=flat)
    dock.add_step(record)
    painted(qtbot, dock, record)
    chart = dock.chart
    assert chart.y_view()[1] > 1.0  # 0–100% and the band for labels above it
    dock.auto_y_box.setChecked(True)
    tallest = max(max(v.probs[:50]) for v in flat)
    top = nice_top(tallest)
    assert top < 0.2
    low, high = chart.y_view()
    assert low == 0.0
    assert top <= high < 2 * top
    assert chart.getPlotItem().getAxis("left")._tickLevels == [linear_ticks(top)]
    assert dock.view_options() == {"log_scale": False, "auto_y": True, "legend": True}
    dock.auto_y_box.setChecked(False)
    assert chart.y_view()[1] > 1.0
    options: list[dict[str, bool]] = []
    dock.sig_view_options_changed.connect(options.append)
    dock.set_view_options({"auto_y": True, "legend": False, "nonsense": 3})
    assert options[-1] == {"log_scale": False, "auto_y": True, "legend": False}
    assert not chart.legend.isVisible()


def test_the_chosen_label_never_prints_over_a_cut_label_nor_leaves_the_plot(
        qtbot: QtBot, dock: ChartDock) -> None:
    settings = SETTINGS.replace(top_p=0.05)
    record = make_record(6, settings=settings)
    top_p = record.stage("top_p")
    assert top_p is not None
    assert top_p.kept == 1  # the premise: "top-p keeps 1", and the chosen token is #1 at 100%
    assert record.raw_rank == 1
    assert record.prob == pytest.approx(1.0)
    dock.set_sampler_settings(settings)
    dock.add_step(record)
    painted(qtbot, dock, record)
    chart = dock.chart
    for bars in (30, 10, 200):  # narrow and wide bars alike
        dock.set_bar_count(bars)
        chart.viewport().repaint()  # text items take their place on screen when drawn
        plot = chart.getPlotItem().getViewBox().sceneBoundingRect()
        chosen = chart.chosen_text.sceneBoundingRect()
        assert chart.chosen_text.toPlainText() == "100% · #1"
        labels = [line.label for line in chart.cut_lines.values() if line.isVisible()]
        assert any(label.format == "top-p keeps 1" for label in labels)
        for label in labels:
            box = label.sceneBoundingRect()
            assert not box.intersects(chosen), (bars, label.format)
            assert plot.contains(box), (bars, label.format)
            for other in labels:
                if other is not label:
                    assert not box.intersects(other.sceneBoundingRect()), bars
        assert plot.contains(chosen), bars


# --- the real window, engine and Gemma ---


def last_reply_id() -> int:
    with ConversationStore(paths.database_path()) as store:
        [conversation] = store.list_conversations()
        return [m.id for m in store.active_path(conversation.id) if m.role == "assistant"][-1]


@pytest.mark.engine
def test_a_step_sampled_at_one_setting_shows_the_panels_as_an_overlay(
        qtbot: Any, home: Path, gemma_models_dir: Path) -> None:
    settings = AppSettings()
    settings.load_settings = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
    w = MainWindow(settings, models_dir=gemma_models_dir, with_services=False)
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    w.start()
    dock = w.chart_dock
    if w.chart_dock.replays.panel is None:  # until the window's wiring pushes the panel
        w.sampling_panel.sig_settings_changed.connect(dock.set_panel_settings)
    try:
        qtbot.waitUntil(lambda: w.models.info is not None and not w.models.loading,
                        timeout=120_000)
        sampled = SamplerSettings(temperature=0.2, top_k=40, top_p=0.95, min_p=0.05,
                                  max_tokens=12)
        w.sampling_panel.set_settings(sampled)
        w.chat_view.input.setPlainText("Write a short poem about the sea.")
        w.chat_view.submit()
        qtbot.waitUntil(lambda: not w.chat.busy and not w.chat_view.busy, timeout=120_000)
        gen = dock.generation
        assert gen is not None
        assert gen.finished
        cut = [r.step for r in gen.steps
               if stage_changed(feeding_stage(r, "top_p"), r.stage("top_p"))]  # type: ignore[arg-type]
        assert cut, "top-p 0.95 cut nothing in this reply: the test needs a step it cut"
        step = cut[0]
        recorded = gen.step(step)
        assert recorded is not None

        # The panel moves on; the old step is clicked.
        w.sampling_panel.set_settings(sampled.replace(temperature=1.5, top_p=0.5))
        w.chat_view.sig_step_clicked.emit(last_reply_id(), step)
        assert dock.selected_step == step
        # Header, cut lines and inspector: what the step was sampled with.
        assert dock.sampled_label.text().startswith("Sampled with T 0.20 · top-k 40 · top-p 0.95")
        assert dock.chart.top_p_line.value() == pytest.approx(0.95)
        assert dock.inspector.spins["temperature"].value() == pytest.approx(0.2)
        assert dock.inspector.spins["top_p"].value() == pytest.approx(0.95)
        # The overlay: the same step replayed by the engine under the panel's settings.
        qtbot.waitUntil(lambda: dock.what_if.record is not None, timeout=30_000)
        overlay = dock.what_if.record
        assert overlay.replayed
        assert overlay.step == step
        assert dock.what_if.settings == gen.settings_at(step).replace(  # type: ignore[union-attr]
            temperature=1.5, top_p=0.5)
        top_p = overlay.stage("top_p")
        assert top_p is not None
        assert len(dock.chart.what_if_bars.opts["x"]) > 0
        assert dock.what_if_label.text().startswith("What-if: T 1.5 · top-p 0.5 would keep ")
        assert dock.shown is recorded

        # A slider: the overlay follows it, exactly (the engine's replay).
        w.chart_dock.inspector.sliders["top_k"].setValue(1)
        qtbot.waitUntil(lambda: dock.what_if.settings is not None
                        and dock.what_if.settings.top_k == 1, timeout=30_000)
        assert dock.what_if.record is not None
        assert dock.what_if.record.stages[-1].kept == 1
        assert heights(dock.chart.what_if_bars) == pytest.approx([1.0])
        assert dock.what_if.settings.temperature == pytest.approx(0.2)  # the step's own T
    finally:
        w.close()
