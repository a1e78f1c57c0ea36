"""Window responsiveness benchmark: a chat reply generated in the real main window, and the
longest stall of the GUI event loop meanwhile (target ≤ 50 ms); then, in the same window, the
what-if latency from a chart slider to the painted replay at a ~1k-token context
(`desktop.ui.bench.whatif`, target ≤ 50 ms).

    python -m desktop.ui.bench.window [--model PATH] [--tokens N] [--threads T]

Runs a QApplication on the main (GUI) thread (offscreen when there is no display), the whole
`MainWindow` with its docks and chart, and the engine in its worker process. Openlid's folders
point into a temporary home, so the benchmark never touches the user's settings or conversations.
A 10 ms heartbeat timer measures the longest gap between ticks: how long the GUI thread was busy
at a stretch. Prints one JSON object. The CLI's `openlid bench --ui` runs this module in a child
process (the CLI itself never imports Qt).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

QUESTION = "Tell me the story of the printing press."


def _run_until(done: Callable[[], bool], timeout: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout
    poll = QTimer()
    poll.setInterval(10)

    def check() -> None:
        if done() or time.monotonic() > deadline:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()


def run(model: str = "", tokens: int = 300, threads: int = 0) -> dict[str, Any]:
    from desktop.core import paths

    # Keep the real models folder (no second copy of the ready model); all else goes to a
    # throwaway home.
    os.environ.setdefault("OPENLID_MODELS_DIR", str(paths.models_dir()))
    os.environ["OPENLID_HOME"] = tempfile.mkdtemp(prefix="openlid-window-bench-")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop.core.model_info import LoadSettings
    from desktop.core.ready_model import ready_model_path
    from desktop.core.sampling import SamplerSettings
    from desktop.ui.heartbeat import Heartbeat
    from desktop.ui.settings import AppSettings
    from desktop.ui.window.main_window import MainWindow

    app = QApplication.instance() or QApplication(["openlid-window-bench"])
    path = model or str(ready_model_path())
    settings = AppSettings()
    # Room for the reply and then the what-if's ~1k-token message.
    settings.load_settings = LoadSettings(n_ctx=max(2048, tokens + 1600), n_threads=threads)
    window = MainWindow(settings)
    window.show()
    started = time.perf_counter()
    window.start(model=path)
    from desktop.ui.engine_service import settle_heap

    settle_heap()  # as run_app does
    _run_until(lambda: window.models.info is not None or not window.models.loading, 300)
    if window.models.info is None:
        window.close()
        return {"error": f"the model could not be loaded: {path}"}
    load_s = time.perf_counter() - started
    window.sampling_panel.set_settings(
        SamplerSettings(temperature=0.7, seed=1, max_tokens=tokens, ignore_eos=True))

    heartbeat = Heartbeat(10)
    heartbeat.start()
    window.chat_view.input.setPlainText(QUESTION)
    t0 = time.perf_counter()
    window.chat_view.submit()
    _run_until(lambda: window.chat.request_id is not None, 60)
    _run_until(lambda: not window.chat.busy, 600)
    elapsed = time.perf_counter() - t0
    heartbeat.stop()
    stalls = heartbeat.gaps
    steps = len(window.chat.steps)
    report = {
        "model": path,
        "tokens": steps,
        "load_s": round(load_s, 2),
        "tokens_per_second_seen_by_gui": round(steps / elapsed, 1) if elapsed else 0.0,
        "engine_tokens_per_second": window.status.speed_label.text(),
        "longest_stall_ms": round(1000 * max(stalls, default=0.0), 1),
        "stalls_over_50ms": sum(1 for s in stalls if s > 0.05),
        "transcript_flushes": window.chat_view.buffer.flushes,
        "chart_paints": getattr(window.chart_dock, "paint_count", None),
        "target_ms": 50,
    }
    from desktop.ui.bench.whatif import measure

    report["what_if"] = measure(window, app)
    window.close()
    app.processEvents()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.ui.bench.window")
    parser.add_argument("--model", default="", help="GGUF file (default: the ready model)")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    report = run(args.model, args.tokens, args.threads)
    print(json.dumps(report, indent=2))
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
