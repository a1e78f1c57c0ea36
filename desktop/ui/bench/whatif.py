"""What-if latency: from a slider in the chart's inspector moving to the chart having painted the
shown step replayed under the new value, in the real main window at a ~1k-token context.

Run by `desktop.ui.bench.window` (so `openlid bench --ui` reports it) on the window it opened,
after its own measurement: a long text (~1,000 tokens) is continued by a few tokens in Completion,
the last step is pinned on the chart, and the temperature slider is moved one position at a time,
each move waiting for the paint (the engine replays the step from its exact logits: a one-token
decode with the KV cache reused, then the sampler chain stage by stage). Then a drag: positions
sent every 16 ms regardless, the latency of each paint measured from the oldest move it answers.
Timings are reported, never asserted. GUI thread of the benchmark's process.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

PARAGRAPH = ("The printing press changed how ideas travelled: a page set once could be printed "
             "hundreds of times, cheaply and identically, and sold in towns far from the shop "
             "that made it. ")
REPEATS = 29  # ~35 tokens each (Gemma's tokenizer): the replayed step sits at ~1,020 tokens
MOVES = 30  # slider moves timed one at a time
DRAG_MOVES = 30  # positions of the drag (slider positions 10 … 39, each once)
DRAG_INTERVAL_S = 0.016  # a mouse drag reports about 60 positions a second


def _wait(app: Any, done: Any, timeout: float) -> bool:
    """Run the event loop until `done()` (True) or the timeout (False), polling every 1 ms."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout
    poll = QTimer()
    poll.setInterval(1)
    poll.timeout.connect(lambda: loop.quit() if done() or time.monotonic() > deadline else None)
    poll.start()
    if not done():
        loop.exec()
    poll.stop()
    return bool(done())


def _figures(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {}
    return {"median_ms": round(statistics.median(ms), 1), "worst_ms": round(max(ms), 1),
            "best_ms": round(min(ms), 1)}


def measure(window: Any, app: Any) -> dict[str, Any]:
    """Continue the long text, pin the last step, move the slider; the figures as a dict."""
    from desktop.core.sampling import SamplerSettings

    window.sampling_panel.set_settings(SamplerSettings(temperature=0.7, seed=1, max_tokens=4))
    dock = window.chart_dock
    before = dock.generation
    # Completion mode: the text continued as typed, as a base model is used; the chat's reply
    # (if any) must have ended first.
    _wait(app, lambda: not window.chat.busy and not window.engine.busy, 60)
    window.tabs.setCurrentWidget(window.completion_view)
    window.completion_view.editor.setPlainText(PARAGRAPH * REPEATS)
    window.completion_view.submit()
    print("what-if: a ~1k-token text sent to be continued", file=sys.stderr, flush=True)
    answered = _wait(app, lambda: dock.generation is not before and dock.generation is not None
                     and dock.generation.finished and not window.engine.busy, 600)
    if not answered:
        return {"error": "the long text was not continued"}
    gen = dock.generation
    if gen is None or not gen.steps:
        return {"error": "no reply to replay"}
    step = gen.steps[-1].step
    dock.show()
    dock.raise_()
    dock.select_step(step)
    context = len(gen.prompt_tokens) + step
    slider = dock.inspector.sliders["temperature"]
    chart, what_if = dock.chart, dock.what_if

    def painted_after(since: float, position: int) -> bool:
        settings = what_if.settings
        return (settings is not None and slider.value() == position and what_if.record is not None
                and abs(settings.temperature - position * 0.05) < 1e-9
                and chart.painted_at > since)

    print(f"what-if: step {step} pinned at a {context}-token context; moving the slider",
          file=sys.stderr, flush=True)
    # One move at a time: each waits for its own replay to be painted.
    single: list[float] = []
    first_ms = None
    for k in range(MOVES + 1):
        position = 15 + (k % 20)  # temperature 0.75 … 1.70, never the sampled 0.70
        if position == slider.value():
            position += 1
        started = time.perf_counter()
        slider.setValue(position)
        if not _wait(app, lambda p=position, t=started: painted_after(t, p), 30):
            return {"error": f"no replay was painted for slider position {position}"}
        ms = (chart.painted_at - started) * 1000
        if k == 0:
            first_ms = ms  # the first replay may re-decode the context into the KV cache
        else:
            single.append(ms)

    # A drag: a new position every 16 ms whatever the engine does; replays coalesce, and each
    # paint is timed from the move to the position it shows.
    from PySide6.QtCore import QTimer

    drag: list[float] = []
    moved: dict[int, float] = {}
    state: dict[str, Any] = {"last": what_if.record, "waiting": None}

    def watch() -> None:
        if what_if.record is not state["last"] and what_if.settings is not None:
            state["last"] = what_if.record
            state["waiting"] = (round(what_if.settings.temperature / 0.05), time.perf_counter())
        waiting = state["waiting"]
        if waiting is not None and chart.painted_at >= waiting[1]:
            state["waiting"] = None
            started = moved.get(waiting[0])
            if started is not None:
                drag.append((chart.painted_at - started) * 1000)

    sent_before = what_if.replays.sent
    watcher = QTimer()
    watcher.setInterval(1)
    watcher.timeout.connect(watch)
    watcher.start()
    for k in range(DRAG_MOVES):
        position = 10 + k  # temperature 0.50 → 1.95, each position once
        moved[position] = time.perf_counter()
        slider.setValue(position)
        until = time.perf_counter() + DRAG_INTERVAL_S
        _wait(app, lambda u=until: time.perf_counter() >= u, 1)
    _wait(app, lambda: what_if.replays.in_flight is None and state["waiting"] is None, 10)
    watcher.stop()
    return {
        "context_tokens": context,
        "first_replay_ms": round(first_ms or 0.0, 1),
        "slider_to_paint": _figures(single),
        "moves": len(single),
        "drag_slider_to_paint": _figures(drag),
        "drag_moves": DRAG_MOVES,
        "drag_replays_sent": what_if.replays.sent - sent_before,
        "target_ms": 50,
    }
