"""StatusBar: model, backend and layers offloaded, tokens/s, time to first token, context used,
process memory. GUI thread only.

Live numbers are throttled: `note_steps` takes the batches of steps the generation tracker hands
out (`note_step` single ones), but the labels change at most four times a second. Memory is
sampled once a second from /proc (Linux: a kernel read, no disk) for the app and the engine
process; elsewhere the app's peak size from `resource`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from desktop.core.drafting import draft_words
from desktop.core.model_info import ModelInfo
from desktop.core.steps import GenerationDone, StepRecord
from desktop.ui.library.entries import format_bytes

_LIVE_INTERVAL_S = 0.25
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, or None where it cannot be read cheaply."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass
    if pid == os.getpid():
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024
        except (ImportError, OSError):
            return None
    return None


class StatusBar(QStatusBar):
    def __init__(self, engine_pid: Callable[[], int | None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusBar")
        self._engine_pid = engine_pid or (lambda: None)
        self._namer: Callable[[str], str] | None = None
        self.model_label = self._label("No model loaded", "Model")
        self.backend_label = self._label("", "Backend and GPU layers")
        self.speed_label = self._label("", "Tokens per second")
        self.ttft_label = self._label("", "Time to first token")
        self.context_label = self._label("", "Context used")
        self.memory_label = self._label("", "Memory")
        self._n_ctx = 0
        self._model_path = ""
        self._plain_tps: dict[str, float] = {}  # per model: the last reply's speed without a draft
        self._started = 0.0
        self._first_at = 0.0
        self._tokens = 0
        self._last_update = 0.0
        self._timer = QTimer(self)
        self._timer.setObjectName("memory-sampler")
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.sample_memory)

    def _label(self, text: str, accessible: str) -> QLabel:
        label = QLabel(text)
        label.setAccessibleName(accessible)
        label.setToolTip(accessible)
        label.setContentsMargins(6, 0, 6, 0)
        self.addPermanentWidget(label)
        return label

    # --- model ---

    def set_namer(self, namer: Callable[[str], str]) -> None:
        """How models are named (the library's `display_name`: file, quant and repo), so the
        status bar says the same name as the library row."""
        self._namer = namer

    def set_loading(self, name: str) -> None:
        self.model_label.setText(f"Loading {name}…")
        self.backend_label.setText("")

    def set_model(self, info: ModelInfo | None, name: str = "") -> None:
        """Show the loaded model (`name`, when given, instead of the one in its metadata)."""
        self._model_path = info.path if info is not None else ""
        if info is None:
            self.model_label.setText("No model loaded")
            self.backend_label.setText("")
            self.context_label.setText("")
            self._n_ctx = 0
            return
        if not name and self._namer is not None and info.path:
            name = self._namer(info.path)  # the library's name already says the quant
            self.model_label.setText(name)
        else:
            quant = f" · {info.quant}" if info.quant else ""
            self.model_label.setText(f"{name or info.name or info.architecture}{quant}")
        self.model_label.setToolTip(f"Model: {info.path}")
        if info.n_layers_offloaded:
            layers = f" · {info.n_layers_offloaded}/{info.n_layer} layers on GPU"
        elif info.gpu_offload_supported:
            layers = " · no layers on GPU"
        else:
            layers = ""
        self.backend_label.setText(f"{info.backend}{layers}")
        self.backend_label.setToolTip(info.offload_note or "Backend and GPU layers")
        self._n_ctx = info.n_ctx
        self.set_context(0)

    def set_context(self, used: int) -> None:
        if self._n_ctx:
            pct = 100 * used / self._n_ctx
            self.context_label.setText(f"Context {used:,} / {self._n_ctx:,} ({pct:.0f}%)")

    # --- generation ---

    def generation_started(self) -> None:
        self._started = time.monotonic()
        self._first_at = 0.0
        self._tokens = 0
        self._last_update = 0.0
        self.speed_label.setText("…")
        self.ttft_label.setText("")

    def note_steps(self, batch: Sequence[StepRecord]) -> None:
        """A batch of the running generation's steps (its newest says how full the context is)."""
        if batch:
            self.note_step(batch[-1].position, len(batch))

    def note_step(self, position: int, count: int = 1) -> None:
        now = time.monotonic()
        first = self._tokens == 0
        self._tokens += count
        if first:
            self._first_at = now
            self.ttft_label.setText(f"First token {1000 * (now - self._started):.0f} ms")
        if now - self._last_update < _LIVE_INTERVAL_S:
            return
        self._last_update = now
        if self._tokens > 1 and now > self._first_at:
            rate = (self._tokens - 1) / (now - self._first_at)
            self.speed_label.setText(f"{rate:.1f} tok/s")
        # A remote endpoint's steps carry no position (it says the prompt's length only with
        # its usage, at the end): the tokens generated so far are the least the context holds.
        self.set_context(max(position + 1, self._tokens))

    def generation_finished(self, done: GenerationDone) -> None:
        timings = done.timings
        tps = timings.tokens_per_second
        text = f"{tps:.1f} tok/s"
        if done.draft is None:
            if tps > 0:
                self._plain_tps[self._model_path] = tps
        else:  # speculative decoding: how many proposals the model kept, and what it gained
            plain = self._plain_tps.get(self._model_path)
            text += " · " + draft_words(done.draft, tps / plain if plain else None)
        self.speed_label.setText(text)
        self.ttft_label.setText(f"First token {timings.first_token_ms:.0f} ms")
        self.set_context(done.usage.total_tokens)

    # --- memory ---

    def start_sampling(self) -> None:
        self.sample_memory()
        self._timer.start()

    def stop_sampling(self) -> None:
        self._timer.stop()

    def sample_memory(self) -> None:
        app = rss_bytes(os.getpid())
        pid = self._engine_pid()
        engine = rss_bytes(pid) if pid else None
        parts = []
        if app is not None:
            parts.append(f"App {format_bytes(app)}")
        if engine is not None:
            parts.append(f"engine {format_bytes(engine)}")
        self.memory_label.setText(" · ".join(parts))
