"""Chart benchmark: generation speed with the live chart dock fed and shown, against no chart.

    python -m desktop.ui.bench.chart --model PATH --tokens N [--rounds R]

Runs a real QApplication on the main (GUI) thread (offscreen when there is no display) and the
engine in its usual worker process through `EngineService`. Each round generates N tokens
greedily with `ignore_eos` twice, chart off then chart on, in alternating order (ABBA) so drift on
a shared machine hits both alike; the best round of each counts, as in `openlid bench`. Prints one
JSON object: tokens_per_second for both, `ratio_chart_on_vs_off` (target ≥ 0.95), the rate the GUI
saw, paints, and the longest stall of the GUI event loop while the chart was live.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

PROMPT = "The history of the printing press begins"


def _wait(done: Callable[[], bool], timeout: float) -> None:
    """Run the GUI event loop (as the app does, blocking in exec) until `done()` holds."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout

    def check() -> None:
        if done() or time.monotonic() > deadline:
            loop.quit()

    poll = QTimer()
    poll.setInterval(10)  # a cheap check; the loop sleeps in between like the app's
    poll.timeout.connect(check)
    poll.start()
    if not done():
        loop.exec()
    poll.stop()
    if not done():
        raise TimeoutError("the engine did not answer in time")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.ui.bench.chart")
    parser.add_argument("--model", required=True, help="GGUF file to load")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (off, on) runs")
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0 = automatic)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

    from desktop.core.model_info import LoadSettings
    from desktop.core.sampling import SamplerSettings
    from desktop.core.steps import GenerationDone, StepRecord
    from desktop.ui.chart import ChartDock
    from desktop.ui.engine_service import EngineService
    from desktop.ui.heartbeat import Heartbeat

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 (kept alive)
    service = EngineService()
    window = QMainWindow()
    window.setCentralWidget(QWidget())
    dock = ChartDock(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1300, 900)
    settings = SamplerSettings(temperature=0.0, max_tokens=args.tokens, ignore_eos=True)
    dock.set_sampler_settings(settings)

    state: dict[str, Any] = {"loaded": False, "done": None, "failed": None}
    service.sig_model_loaded.connect(lambda *_: state.update(loaded=True))
    service.sig_request_failed.connect(
        lambda _rid, kind, msg: state.update(failed=f"{kind}: {msg}"))
    service.sig_engine_crashed.connect(lambda crash: state.update(failed=str(crash.reason)))
    service.sig_generation_finished.connect(lambda _rid, done, _t: state.update(done=done))
    arrivals: list[float] = []
    service.sig_step_generated.connect(lambda _rid, _rec: arrivals.append(time.perf_counter()))

    # The GUI's heartbeat: a 5 ms timer whose late ticks measure event-loop stalls.
    heartbeat = Heartbeat(5)

    def run(chart: bool) -> dict[str, float]:
        state["done"] = None
        arrivals.clear()
        dock.clear()
        if chart:
            service.sig_step_generated.connect(_feed)
            window.show()
        else:
            window.hide()
        paints_before = dock.paint_count
        cpu_before = time.process_time()
        heartbeat.start()
        service.generate(((PROMPT, False),), settings)
        _wait(lambda: state["done"] is not None or state["failed"] is not None, 600)
        heartbeat.stop()
        if chart:
            service.sig_step_generated.disconnect(_feed)
        if state["failed"]:
            raise RuntimeError(state["failed"])
        done: GenerationDone = state["done"]
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        return {
            "tokens_per_second": done.timings.tokens_per_second,
            "gui_tokens_per_second": (len(arrivals) - 1) / span if span > 0 else 0.0,
            "paints": float(dock.paint_count - paints_before),
            "longest_gui_stall_ms": float(round(1000 * heartbeat.worst)),
            "gui_cpu_s": time.process_time() - cpu_before,
        }

    def _feed(_rid: int, record: StepRecord) -> None:
        dock.add_step(record)

    try:
        service.load(args.model, LoadSettings(n_ctx=max(1024, args.tokens + 128),
                                              n_threads=args.threads))
        _wait(lambda: state["loaded"] or state["failed"] is not None, 300)
        if state["failed"]:
            raise RuntimeError(state["failed"])
        # Warm-up: page in the model and the chart's code paths before anything counts.
        run(False)
        run(True)
        off: list[dict[str, float]] = []
        on: list[dict[str, float]] = []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for chart in order:
                (on if chart else off).append(run(chart))
    finally:
        service.shutdown()
        window.close()

    best_off = max(off, key=lambda m: m["tokens_per_second"])
    best_on = max(on, key=lambda m: m["tokens_per_second"])
    report = {
        "model": args.model,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "tokens_per_second_chart_off": round(best_off["tokens_per_second"], 2),
        "tokens_per_second_chart_on": round(best_on["tokens_per_second"], 2),
        "ratio_chart_on_vs_off": round(best_on["tokens_per_second"]
                                       / max(best_off["tokens_per_second"], 1e-9), 3),
        "gui_tokens_per_second_chart_off": round(best_off["gui_tokens_per_second"], 2),
        "gui_tokens_per_second_chart_on": round(best_on["gui_tokens_per_second"], 2),
        "paints_per_run_chart_on": best_on["paints"],
        "longest_gui_stall_ms_chart_on": max(m["longest_gui_stall_ms"] for m in on),
        "runs_chart_off": [round(m["tokens_per_second"], 2) for m in off],
        "runs_chart_on": [round(m["tokens_per_second"], 2) for m in on],
        # The window process's CPU seconds per run: on 2 cores, what the chart takes from decode.
        "gui_cpu_s_chart_off": [round(m["gui_cpu_s"], 2) for m in off],
        "gui_cpu_s_chart_on": [round(m["gui_cpu_s"], 2) for m in on],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
