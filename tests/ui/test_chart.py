"""The live token-probability chart, timeline and step inspector, driven offscreen with qtbot.

Synthetic StepRecords are shaped like the engine's (the same chain, stage views and pieces);
the last test runs the real engine with the shipped Gemma model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtWidgets import QMainWindow, QWidget
from pytestqt.qtbot import QtBot

from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import token_label
from desktop.ui.chart import ChartDock
from desktop.ui.chart.chart_dock import TIMELINE_DEFER_MS
from desktop.ui.chart.cut_markers import cumulative_points
from desktop.ui.chart.distribution_chart import LOG_FLOOR
from tests.threads import TEST_THREADS

pytestmark = [
    # The offscreen platform says this whenever a window's minimum size changes; not ours.
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
    pytest.mark.usefixtures("no_dangling"),  # no timer or engine thread left running
]

WORDS = (" the", " a", "\n", " cat", ",", "\\xe2", "<0x0A>", "", " sat", "\t", "  ", " mat")
SETTINGS = SamplerSettings(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)


def make_record(step: int, n_vocab: int = 400, top_n: int = 50,
                settings: SamplerSettings = SETTINGS) -> StepRecord:
    """A step through penalties → top_k → typical → top_p → min_p → temperature (test data)."""
    rng = random.Random(step)
    logits = sorted((rng.gauss(0, 2.0) for _ in range(n_vocab)), reverse=True)
    ids = rng.sample(range(n_vocab), n_vocab)
    z = sum(math.exp(v - logits[0]) for v in logits)
    raw = [math.exp(v - logits[0]) / z for v in logits]

    def view(name: str, keep: int, weights: list[float]) -> StageView:
        total = sum(weights[:keep])
        listed = min(keep, top_n)
        return StageView(name, keep, sum(raw[:keep]), tuple(ids[:listed]),
                         tuple(w / total for w in weights[:listed]))

    k = settings.top_k
    head = sum(raw[:k])
    cumulative = np.cumsum(np.array(raw[:k]) / head)
    kp = int(np.searchsorted(cumulative, settings.top_p)) + 1
    km = sum(1 for p in raw[:kp] if p >= settings.min_p * raw[0])
    hot = [math.exp((v - logits[0]) / settings.temperature) for v in logits]
    stages = (view("raw", n_vocab, raw), view("penalties", n_vocab, raw), view("top_k", k, raw),
              view("typical", k, raw), view("top_p", kp, raw), view("min_p", km, raw),
              view("temperature", km, hot))
    pick = step % km
    final = stages[-1]
    pieces = {i: WORDS[i % len(WORDS)] for s in stages for i in s.ids}
    token = ids[pick]
    return StepRecord(step=step, token_id=token, text=pieces[token], piece=pieces[token],
                      prob=final.probs[pick], raw_prob=raw[pick], raw_rank=pick + 1,
                      entropy_raw=-sum(p * math.log2(p) for p in raw),
                      entropy_final=-sum(p * math.log2(p) for p in final.probs),
                      stages=stages, pieces=pieces, n_vocab=n_vocab, position=20 + step)


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


def painted(qtbot: QtBot, dock: ChartDock, record: StepRecord) -> None:
    qtbot.waitUntil(lambda: dock.shown is record, timeout=2000)


def heights(item: object) -> list[float]:
    return [float(v) for v in item.opts["height"]]  # type: ignore[attr-defined]


def xs(item: object) -> list[float]:
    return [float(v) for v in item.opts["x"]]  # type: ignore[attr-defined]


def test_bars_labels_cut_lines_and_chosen_token_follow_the_record(
        qtbot: QtBot, dock: ChartDock) -> None:
    record = make_record(7)
    dock.add_step(record)
    painted(qtbot, dock, record)
    chart = dock.chart
    raw, final = record.stages[0], record.stages[-1]
    assert chart.bar_ids == raw.ids[:50]
    assert heights(chart.raw_bars) == pytest.approx(raw.probs[:50])
    kept = len(final.ids)
    assert xs(chart.stage_bars) == list(range(kept))  # ids are nested: survivors lead raw order
    assert heights(chart.stage_bars) == pytest.approx(final.probs)
    assert xs(chart.removed_bars) == list(range(kept, 50))
    assert heights(chart.removed_bars) == pytest.approx(raw.probs[kept:50])
    assert chart.axis.labels == tuple(token_label(record.pieces[i]) for i in raw.ids[:50])
    # The chosen token: one separate bar item over its raw position, with its numbers.
    i = raw.ids.index(record.token_id)
    assert xs(chart.chosen_bar) == [i]
    assert f"#{record.raw_rank}" in chart.chosen_text.toPlainText()
    assert "‘" + token_label(record.piece) + "’" in dock.header.text()
    # Cut lines sit after the last survivor of each stage.
    top_k, top_p, min_p = (record.stage(n) for n in ("top_k", "top_p", "min_p"))
    assert chart.cut_lines["top_k"].value() == pytest.approx(top_k.kept - 0.5)
    assert chart.cut_lines["top_p"].value() == pytest.approx(top_p.kept - 0.5)
    assert chart.cut_lines["min_p"].isVisible() == (min_p.kept != top_p.kept)
    if min_p.kept != top_p.kept:
        assert chart.cut_lines["min_p"].value() == pytest.approx(min_p.kept - 0.5)
        assert chart.min_p_line.value() == pytest.approx(SETTINGS.min_p * raw.probs[0])
    # A cut label sits left of its line, or right of it near the left edge: inside the plot.
    vb = chart.getPlotItem().getViewBox()
    chart.viewport().repaint()  # text items take their place on screen when drawn
    for name in ("top_k", "top_p"):
        label = chart.cut_lines[name].label
        box = label.sceneBoundingRect()
        assert vb.sceneBoundingRect().contains(box), name
        at = vb.mapViewToScene(QPointF(chart.cut_lines[name].value(), 0.5)).x()
        assert min(abs(box.right() - at), abs(box.left() - at)) < 2, name  # beside its line
    # Cumulative curve: the running sum of the probabilities top-p received.
    cx, cy = chart.cumulative.getData()
    assert list(cy) == pytest.approx(list(np.cumsum(record.stage("typical").probs)))
    assert list(cx) == list(range(len(cy)))
    assert chart.top_p_line.value() == pytest.approx(SETTINGS.top_p)


def test_stage_selector_log_axis_and_bar_count(qtbot: QtBot, dock: ChartDock) -> None:
    record = make_record(3)
    dock.add_step(record)
    painted(qtbot, dock, record)
    names = [dock.stage_box.itemData(k) for k in range(dock.stage_box.count())]
    assert names == [s.name for s in record.stages]
    dock.stage_box.setCurrentIndex(names.index("top_k"))
    top_k = record.stage("top_k")
    assert heights(dock.chart.stage_bars) == pytest.approx(top_k.probs)
    assert xs(dock.chart.removed_bars) == list(range(top_k.kept, 50))
    dock.stage_box.setCurrentIndex(0)  # raw: nothing removed yet
    assert xs(dock.chart.removed_bars) == []
    dock.log_box.setChecked(True)
    raw = record.stages[0]
    expected = [math.log10(p) - LOG_FLOOR for p in raw.probs[:50]]
    assert heights(dock.chart.raw_bars) == pytest.approx(expected)
    assert dock.chart.getPlotItem().getViewBox().viewRange()[1][0] == pytest.approx(LOG_FLOOR)
    dock.set_bar_count(10)
    assert len(dock.chart.bar_ids) == 10
    assert len(dock.chart.axis.labels) == 10
    assert not dock.chart.cut_lines["top_k"].isVisible()  # k = 40 falls off a 10-bar chart
    dock.set_bar_count(500)
    assert dock.bars_spin.value() == 200


def test_labels_are_redrawn_only_when_they_change(qtbot: QtBot, dock: ChartDock) -> None:
    first = make_record(1)
    dock.add_step(first)
    painted(qtbot, dock, first)
    updates = dock.chart.axis.label_updates
    same_tokens = dataclasses.replace(first, step=2)
    dock.add_step(same_tokens)
    painted(qtbot, dock, same_tokens)
    assert dock.chart.axis.label_updates == updates
    other = make_record(3)
    dock.add_step(other)
    painted(qtbot, dock, other)
    assert dock.chart.axis.label_updates == updates + 1


def test_soak_20000_steps_paints_are_coalesced(qtbot: QtBot, dock: ChartDock) -> None:
    templates = [make_record(i) for i in range(40)]
    started = time.perf_counter()
    for step in range(20_000):
        dock.add_step(dataclasses.replace(templates[step % 40], step=step))
        if step % 50 == 0:
            qtbot.wait(1)  # the event loop runs, as it does between pipe events
    last = dock.latest
    assert last is not None
    painted(qtbot, dock, last)
    elapsed = time.perf_counter() - started
    assert dock.paint_count <= elapsed * 30 + 2
    assert dock.paint_count >= 2
    assert dock.timeline.count == 20_000

    def newest_drawn() -> float:
        x, _ = dock.timeline.entropy_curve.getData()
        return float(x[-1])

    qtbot.waitUntil(lambda: newest_drawn() == 19_999, timeout=2000)  # it scrolled along
    x, _ = dock.timeline.entropy_curve.getData()
    assert len(x) <= dock.timeline.window + 3  # only the visible window is handed over


def click_view(qtbot: QtBot, plot: object, x: float, y: float) -> None:
    vb = plot.getPlotItem().getViewBox()  # type: ignore[attr-defined]
    point = plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))  # type: ignore[attr-defined]
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton,  # type: ignore[attr-defined]
                     pos=QPoint(point.x(), point.y()))


def test_clicking_a_timeline_point_selects_that_step(qtbot: QtBot, dock: ChartDock) -> None:
    for step in range(30):
        dock.add_step(make_record(step))
    painted(qtbot, dock, dock.latest)  # type: ignore[arg-type]
    with qtbot.waitSignal(dock.sig_step_selected, timeout=2000) as blocker:
        click_view(qtbot, dock.timeline, 12.2, 2.0)
    assert blocker.args == [12]
    assert dock.shown is dock.record_of(12)
    assert dock.chart.record is dock.record_of(12)
    assert not dock.live_button.isChecked()
    assert dock.timeline.selected_line.value() == 12
    dock.add_step(make_record(30))  # a pinned step stays while new ones arrive
    qtbot.wait(80)
    assert dock.shown is dock.record_of(12)
    dock.live_button.setChecked(True)
    qtbot.waitUntil(lambda: dock.shown is dock.record_of(30), timeout=2000)
    dock.live_button.setChecked(False)  # unchecking Live holds the step on screen
    assert dock.selected_step == 30
    dock.add_step(make_record(31))
    qtbot.wait(80)
    assert dock.shown is dock.record_of(30)


def test_pick_a_candidate_and_continue_with_it(qtbot: QtBot, dock: ChartDock) -> None:
    record = make_record(5)
    dock.add_step(record)
    painted(qtbot, dock, record)
    click_view(qtbot, dock.chart, 3.1, 0.01)
    token = record.stages[0].ids[3]
    assert dock.chart.candidate == token
    assert xs(dock.chart.candidate_bar) == [3]
    assert dock.inspector.continue_button.isEnabled()
    with qtbot.waitSignal(dock.sig_continue_requested, timeout=1000) as blocker:
        dock.inspector.continue_button.click()
    assert blocker.args == [5, token]


def test_exports(qtbot: QtBot, dock: ChartDock, tmp_path: Path) -> None:
    record = make_record(9)
    dock.add_step(record)
    painted(qtbot, dock, record)
    dock.export_csv(tmp_path / "s.csv")
    dock.export_json(tmp_path / "s.json")
    dock.export_png(tmp_path / "s.png")
    lines = (tmp_path / "s.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "stage,rank,token_id,piece,label,prob,raw_prob,chosen"
    assert len(lines) > 1 + 50
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["step"] == 9
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_step_without_a_distribution_says_so(qtbot: QtBot, dock: ChartDock) -> None:
    bare = dataclasses.replace(make_record(0), stages=(), pieces={})  # generated with capture off
    dock.add_step(bare)
    painted(qtbot, dock, bare)
    assert dock.chart.bar_ids == ()
    assert "no distribution" in dock.chart.message.toPlainText()
    assert dock.stage_box.count() == 0
    full = make_record(1)
    dock.add_step(full)
    painted(qtbot, dock, full)
    assert dock.chart.message.toPlainText() == ""
    assert dock.stage_box.count() == len(full.stages)


def test_a_hidden_dock_does_not_paint(qtbot: QtBot, dock: ChartDock) -> None:
    dock.hide()
    before = dock.paint_count
    for step in range(20):
        dock.add_step(make_record(step))
    qtbot.wait(120)
    assert dock.paint_count == before
    dock.show()
    painted(qtbot, dock, dock.latest)  # type: ignore[arg-type]


def test_clear_empties_everything(qtbot: QtBot, dock: ChartDock) -> None:
    record = make_record(1)
    dock.add_step(record)
    painted(qtbot, dock, record)
    dock.clear()
    assert dock.chart.bar_ids == ()
    assert xs(dock.chart.raw_bars) == []
    assert dock.timeline.count == 0
    assert dock.record_of(1) is None
    assert dock.live_button.isChecked()


def remote_record(step: int) -> StepRecord:
    """A step as RemoteEngine builds it from an endpoint's top_logprobs: raw stage only."""
    from desktop.remote.steps import StepBuilder

    tokens = StepBuilder()
    tokens.step = step
    top = [(" Paris", -0.2), (" the", -2.1), (" a", -3.0), (" located", -4.2)]
    return tokens.record(" Paris", -0.2, top, None, 12.0)


def test_a_remote_model_shows_its_note_and_offers_only_the_raw_stage(
        qtbot: QtBot, dock: ChartDock) -> None:
    from desktop.core.model_info import ModelInfo
    from desktop.remote.client import AVAILABLE_STAGES, STAGES_NOTE
    from desktop.ui.window.wiring import REMOTE_REPLAY_NOTE

    info = ModelInfo(path="remote:abc", architecture="remote", name="far", n_params=0, quant="",
                     size_bytes=0, n_vocab=0, n_ctx_train=1024, n_ctx=1024, n_layer=0,
                     available_stages=AVAILABLE_STAGES, stages_note=STAGES_NOTE)
    dock.set_engine_stages(info.available_stages, info.stages_note, REMOTE_REPLAY_NOTE)
    assert dock.stages_note.isVisible()
    assert dock.stages_note.text() == STAGES_NOTE
    assert dock.chart.legend.texts() == ["raw softmax", "chosen token"]

    record = remote_record(3)
    dock.add_step(record)
    painted(qtbot, dock, record)
    assert [dock.stage_box.itemText(i) for i in range(dock.stage_box.count())] == [
        "raw softmax (final)"]
    assert len(dock.chart.bar_ids) == 4
    assert "4 shown of the endpoint's top 4" in dock.header.text()  # no "of ? tokens"
    assert "needs" not in dock.header.text()
    assert dock.inspector.status.text() == REMOTE_REPLAY_NOTE  # live: the reason, not a hint
    dock.select_step(3)
    assert all(not spin.isEnabled() for spin in dock.inspector.spins.values())
    assert dock.inspector.spins["temperature"].toolTip() == REMOTE_REPLAY_NOTE
    assert REMOTE_REPLAY_NOTE in dock.inspector.status.text()
    click_view(qtbot, dock.chart, 1.1, 0.01)
    assert dock.chart.candidate == record.stages[0].ids[1]
    assert not dock.inspector.continue_button.isEnabled()

    # A stored local reply shown meanwhile: the box still offers only what this engine reports.
    local = make_record(4)
    dock.add_step(local)
    dock.select_step(4)
    assert dock.stage_box.count() == 1
    assert dock.chart.shown_stage() is local.stage("raw")

    # A local model again: every stage, no note, what-ifs back on.
    dock.set_engine_stages(())
    assert not dock.stages_note.isVisible()
    assert dock.stage_box.count() == len(local.stages)
    assert dock.chart.shown_stage() is local.stages[-1]
    assert len(dock.chart.legend.texts()) == 5
    assert all(spin.isEnabled() for spin in dock.inspector.spins.values())
    assert dock.inspector.spins["temperature"].toolTip() == ""


@pytest.mark.engine
def test_real_engine_live_chart_replay_and_continue(
        qtbot: QtBot, dock: ChartDock, gemma_path: Path) -> None:
    from desktop.core.model_info import LoadSettings
    from desktop.ui.engine_service import EngineService

    service = EngineService()
    try:
        with qtbot.waitSignal(service.sig_model_loaded, timeout=120_000):
            service.load(gemma_path, LoadSettings(n_ctx=1024, n_threads=TEST_THREADS))
        settings = SamplerSettings(seed=7, max_tokens=5, ignore_eos=True)
        dock.set_sampler_settings(settings)
        steps: list[StepRecord] = []
        service.sig_step_generated.connect(lambda _rid, rec: (steps.append(rec),
                                                              dock.add_step(rec)))
        with qtbot.waitSignal(service.sig_generation_finished, timeout=120_000) as done:
            service.generate((("The capital of France is", False),), settings)
        prompt = tuple(done.args[2])
        assert len(steps) == 5
        painted(qtbot, dock, steps[-1])
        raw = steps[-1].stages[0]
        assert heights(dock.chart.raw_bars) == pytest.approx(raw.probs[:50])
        assert dock.chart.axis.labels == tuple(token_label(steps[-1].pieces[i])
                                               for i in raw.ids[:50])
        assert xs(dock.chart.chosen_bar) == [raw.ids.index(steps[-1].token_id)]

        # The window's wiring, as the main window does it.
        def replay(step: int, s: SamplerSettings) -> None:
            context = prompt + tuple(r.token_id for r in steps[:step])
            service.replay(context, steps[step].token_id, step, s, len(prompt))

        dock.sig_replay_requested.connect(replay)
        service.sig_step_replayed.connect(lambda _rid, rec: dock.show_replay(rec))
        dock.select_step(2)
        with qtbot.waitSignal(service.sig_step_replayed, timeout=30_000):
            dock.inspector.spins["temperature"].setValue(0.0)
        # The recorded step stays on the chart; the replay is drawn over it.
        assert dock.shown is steps[2]
        overlay = dock.what_if.record
        assert overlay is not None
        assert overlay.replayed
        assert overlay.step == 2
        argmax = steps[2].stages[0].ids[0]
        assert overlay.stages[-1].ids == (argmax,)
        assert overlay.stages[-1].probs == pytest.approx((1.0,))
        assert xs(dock.chart.what_if_bars) == [0.0]
        assert heights(dock.chart.what_if_bars) == pytest.approx([1.0])
        assert "Replay:" in dock.inspector.status.text()

        dock.inspector.spins["temperature"].setValue(0.8)
        dock.inspector.spins["top_k"].setValue(1)
        qtbot.waitUntil(lambda: dock.what_if.record is not None
                        and dock.what_if.record.stages[-1].kept == 1, timeout=30_000)
        assert dock.what_if.settings == settings.replace(temperature=0.8, top_k=1)

        # "Continue with this token": the first token of the new branch is the one picked.
        click_view(qtbot, dock.chart, 1.0, 0.001)
        picked = dock.chart.candidate
        assert picked == steps[2].stages[0].ids[1]
        branch: list[StepRecord] = []

        def continue_with(step: int, token: int) -> None:
            dock.clear()
            service.generate((), settings.replace(max_tokens=2),
                             prompt_tokens=prompt + tuple(r.token_id for r in steps[:step]),
                             forced_tokens=(token,))

        dock.sig_continue_requested.connect(continue_with)
        service.sig_step_generated.disconnect()
        service.sig_step_generated.connect(lambda _rid, rec: branch.append(rec))
        with qtbot.waitSignal(service.sig_generation_finished, timeout=120_000):
            dock.inspector.continue_button.click()
        assert branch[0].token_id == picked
    finally:
        service.shutdown()


@pytest.mark.engine
def test_chart_bench_runs_and_reports_a_ratio(
        qtbot: QtBot, gemma_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from desktop.ui.bench import chart as chart_bench

    assert chart_bench.main(["--model", str(gemma_path), "--tokens", "8", "--rounds", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens"] == 8
    assert report["tokens_per_second_chart_on"] > 0
    assert report["ratio_chart_on_vs_off"] > 0  # timings are reported, never asserted



def test_the_legend_sits_outside_the_plot_and_the_band_above_the_bars_holds_the_labels(
        qtbot: QtBot, dock: ChartDock) -> None:
    chart = dock.chart
    assert chart.legend.parent() is not None  # a line of words in the dock, not in the plot
    def rect(widget: QWidget) -> QRect:
        return QRect(widget.mapTo(dock, QPoint(0, 0)), widget.size())

    assert not rect(chart.legend).intersects(rect(chart))
    assert rect(chart.legend).bottom() < rect(chart).top()
    assert chart.legend.isVisible()
    dock.legend_box.setChecked(False)  # collapsible
    assert not chart.legend.isVisible()
    dock.legend_box.setChecked(True)
    record = make_record(7)
    dock.add_step(record)
    painted(qtbot, dock, record)
    # 100% sits below the band for the chosen token's label and the cut labels' row(s).
    low, high = chart.y_view()
    band_px = (high - 1.0) / (high - low) * chart.getPlotItem().getViewBox().height()
    assert band_px >= (chart.label_rows + 1) * chart.row_px


def xtc_record(step: int) -> StepRecord:
    """top-k keeps 30; XTC then takes the 3 most probable (it keeps the least probable of those
    above its threshold); temperature reshapes what is left."""
    base = make_record(step)
    raw = base.stages[0]
    top_k = StageView("top_k", 30, sum(raw.probs[:30]), raw.ids[:30],
                      tuple(p / sum(raw.probs[:30]) for p in raw.probs[:30]))
    rest = raw.probs[3:30]
    xtc = StageView("xtc", 27, sum(rest), raw.ids[3:30], tuple(p / sum(rest) for p in rest))
    temp = StageView("temperature", 27, xtc.mass, xtc.ids, xtc.probs)
    token = raw.ids[4]
    return dataclasses.replace(base, stages=(raw, top_k, xtc, temp), token_id=token,
                               prob=xtc.probs[1], raw_rank=5)


def test_xtc_cuts_the_head_and_the_chart_says_so(qtbot: QtBot, dock: ChartDock) -> None:
    record = xtc_record(9)
    dock.add_step(record)
    painted(qtbot, dock, record)
    chart = dock.chart
    # The three tokens XTC took are drawn as removed, though the final stage lists only 27 of
    # its survivors and so is incomplete past them; the tail top-k cut is removed too.
    assert xs(chart.removed_bars)[:3] == [0, 1, 2]
    assert 3 not in xs(chart.removed_bars)
    line = chart.cut_lines["xtc"]
    assert line.isVisible()
    assert line.value() == pytest.approx(2.5)  # after the last token it removed
    assert line.label.format == "XTC removed 3 from the top"
    assert chart.cut_lines["top_k"].value() == pytest.approx(29.5)
    labels = [dock.stage_box.itemText(i) for i in range(dock.stage_box.count())]
    assert labels == ["raw softmax", "top-k", "XTC", "temperature (final)"]
    assert "after temperature" in chart.legend.texts()
    dock.stage_box.setCurrentIndex(1)  # top-k: XTC has not run yet, nothing of the head is gone
    assert 0 not in xs(chart.removed_bars)
    assert "after top-k" in chart.legend.texts()


def test_a_cut_near_the_left_edge_labels_to_its_right(qtbot: QtBot, dock: ChartDock) -> None:
    record = make_record(5, settings=SETTINGS.replace(top_p=0.2))
    top_p = record.stage("top_p")
    assert top_p is not None
    assert top_p.kept <= 3  # the test's premise: top-p keeps only the first bars
    dock.set_sampler_settings(SETTINGS.replace(top_p=0.2))
    dock.add_step(record)
    painted(qtbot, dock, record)
    assert tuple(dock.chart.cut_lines["top_p"].label.anchor) == (0.0, 0.0)
    assert tuple(dock.chart.cut_lines["top_k"].label.anchor) == (1.0, 0.0)


def test_a_streaming_step_draws_the_chart_and_the_timeline_in_frames_of_their_own(
        qtbot: QtBot, dock: ChartDock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Painted in one pass of the event loop, the two stalled the window for the sum of both:
    the timeline's redraw comes a frame after the chart's."""
    calls: list[tuple[str, float]] = []
    for name, owner, method in (("chart", dock.chart, "show_record"),
                                ("timeline", dock.timeline, "refresh")):
        original = getattr(owner, method)

        def logged(*args: Any, _name: str = name, _original: Any = original,
                   **kwargs: Any) -> Any:
            calls.append((_name, time.perf_counter()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, method, logged)
    templates = [make_record(i) for i in range(8)]
    for step in range(60):
        dock.add_step(dataclasses.replace(templates[step % 8], step=step))
        qtbot.wait(5)
    last = dock.latest
    assert last is not None
    painted(qtbot, dock, last)
    qtbot.waitUntil(lambda: dock.timeline.entropy_curve.getData()[0][-1] == 59, timeout=2000)
    chart_at = [t for name, t in calls if name == "chart"]
    timeline_at = [t for name, t in calls if name == "timeline"]
    assert len(chart_at) >= 2
    assert timeline_at
    for t in timeline_at:
        before = [c for c in chart_at if c <= t]
        if before:  # never in the same pass as the chart's draw: at least a frame later
            assert t - before[-1] >= TIMELINE_DEFER_MS / 2000, (t - before[-1])


def test_a_finished_reply_draws_its_last_step_now_and_the_timeline_a_frame_later(
        qtbot: QtBot, dock: ChartDock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The end of a reply painted chart and timeline in one pass: the longest stall of a
    streamed reply. The chart draws at once, the timeline's last points follow."""
    for step in range(5):
        dock.add_step(make_record(step))
    drawn: list[str] = []
    original = dock.timeline.refresh
    monkeypatch.setattr(dock.timeline, "refresh",
                        lambda *a, **k: (drawn.append("timeline"), original(*a, **k))[1])
    dock.finish()
    assert dock.shown is not None
    assert dock.shown.step == 4  # the last step, drawn without waiting for a frame
    assert drawn == []
    qtbot.waitUntil(lambda: drawn == ["timeline"], timeout=2000)
    assert dock.timeline.entropy_curve.getData()[0][-1] == 4


def test_a_replys_first_step_lays_nothing_out_again(qtbot: QtBot, dock: ChartDock) -> None:
    """The header, the "Sampled with" line and the inspector's status keep their heights when
    a reply's first step replaces "no step yet": a new layout would resize the chart and the
    timeline and draw both twice in the stall that starts every reply."""
    first = make_record(0)
    dock.add_step(first)
    painted(qtbot, dock, first)
    dock.clear()  # what a new reply does
    qtbot.wait(50)
    sizes = (dock.chart.size(), dock.timeline.size(), dock.header.height())
    record = make_record(1)
    dock.add_step(record)
    dock.paint_now()
    qtbot.wait(50)
    assert (dock.chart.size(), dock.timeline.size(), dock.header.height()) == sizes


def test_the_cumulative_curve_runs_left_to_right_when_a_stage_reordered_top_ps_input(
        qtbot: QtBot, dock: ChartDock) -> None:
    """Penalties before top-p can reorder the candidates: each bar's point is still the mass
    top-p had summed at that token, over the bars left to right (in top-p's own order it ran
    back and forth across the plot), drawn as points: a line through them would climb and
    fall."""
    record = make_record(6)
    feed = record.stage("typical")  # what top-p received
    assert feed is not None
    ids, probs = list(feed.ids), list(feed.probs)
    ids[0], ids[3] = ids[3], ids[0]  # the raw 4th is top-p's first now, the raw 1st its 4th
    reordered = dataclasses.replace(feed, ids=tuple(ids))
    stages = tuple(reordered if s.name == "typical" else s for s in record.stages)
    record = dataclasses.replace(record, stages=stages)
    dock.add_step(record)
    painted(qtbot, dock, record)
    cx, cy = dock.chart.cuts.cumulative_dots.getData()
    assert list(cx) == sorted(cx)
    total = np.cumsum(probs)
    assert cy[0] == pytest.approx(total[3])  # the raw 1st bar: reached fourth by top-p
    assert cy[3] == pytest.approx(total[0])
    # bars 1–2 (top-p's 2nd and 3rd) are joined; the 1st and 4th bars stand alone
    x, y, joined = cumulative_points(reordered, {t: k for k, t in enumerate(feed.ids)})
    assert list(x) == list(cx)
    assert joined[:5] == [False, True, False, False, True]
    assert all(b >= a for a, b, j in zip(y, y[1:], joined) if j)  # a joined line only climbs
    # reordered: a point over each bar and no line (joined, it would climb and fall)
    dx, dy = dock.chart.cuts.cumulative_dots.getData()
    assert list(dx) == list(cx)
    assert list(dy) == pytest.approx(list(cy))
    line_x, _ = dock.chart.cumulative.getData()
    assert line_x is None or len(line_x) == 0


def test_the_cumulative_curve_is_one_line_when_top_p_read_the_bars_in_order() -> None:
    feed = StageView("typical", 5, 1.0, (7, 3, 9, 1, 4), (0.4, 0.3, 0.2, 0.05, 0.05))
    x, y, joined = cumulative_points(feed, {7: 0, 3: 1, 9: 2, 4: 3})  # 1 has no bar
    assert x == [0, 1, 2, 3]
    assert y == pytest.approx([0.4, 0.7, 0.9, 1.0])
    assert joined == [True, True, True, False]  # 9 → 4 skips only a token without a bar
    # reordered where the sum no longer moves (a tail near 100%): still one line
    tail = StageView("typical", 4, 1.0, (7, 3, 9, 1), (0.998, 0.001, 0.0005, 0.0005))
    _x, _y, joined = cumulative_points(tail, {7: 0, 9: 1, 3: 2, 1: 3})
    assert joined == [True, True, True, False]


def test_the_timelines_axis_labels_do_not_print_over_each_other_at_a_small_height(
        qtbot: QtBot, dock: ChartDock) -> None:
    """At 1280×720 the timeline's plot is ~56 pixels high: pyqtgraph's own ticks for the chosen
    token's probability (0.2 apart) printed over each other there."""
    from PySide6.QtGui import QImage, QPainter

    for step in range(30):
        dock.add_step(make_record(step))
    painted(qtbot, dock, dock.latest)  # type: ignore[arg-type]
    dock.timeline.setFixedHeight(80)  # its height in the window at 1280×720
    qtbot.waitUntil(lambda: dock.timeline.getPlotItem().getAxis("right").height() < 70)
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        for name in ("left", "right"):
            specs = dock.timeline.getPlotItem().getAxis(name).generateDrawSpecs(painter)
            assert specs is not None
            rects = [rect for rect, _flags, _text in specs[2]]
            assert len(rects) >= 2, name
            assert not any(a.intersects(b) for k, a in enumerate(rects)
                           for b in rects[k + 1:]), name
    finally:
        painter.end()


def test_the_stage_box_shows_the_final_stages_name_whole_where_its_marker_does_not_fit(
        qtbot: QtBot, dock: ChartDock) -> None:
    """At 1280×720 the box showed "temperature (fir": where "(final)" does not fit, the stage's
    own name shows whole; the list and a wide box keep the whole text."""
    record = make_record(2)
    dock.add_step(record)
    painted(qtbot, dock, record)
    box = dock.stage_box
    final = box.count() - 1
    assert box.currentIndex() == final
    whole = box.itemText(final)
    assert whole.endswith(" (final)")
    name = whole.removesuffix(" (final)")
    box.setFixedWidth(box.fontMetrics().horizontalAdvance(name) + 60)  # room for the name only
    qtbot.wait(20)
    assert box.shown_text() == name
    box.setFixedWidth(box.fontMetrics().horizontalAdvance(whole) + 80)
    qtbot.wait(20)
    assert box.shown_text() == whole
    box.setCurrentIndex(0)  # a stage without a short text: cut with an ellipsis if ever too long
    box.setFixedWidth(50)
    qtbot.wait(20)
    shown = box.shown_text()
    assert shown == box.itemText(0) or shown.endswith("…")
