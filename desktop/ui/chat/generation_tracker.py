"""GenerationTracker: sends each generation request and owns its `Generation`. GUI thread only.

The one place that turns the engine's events into a reply's state: `start` resolves a random
seed to the one actually used, sends the request with exactly those settings and creates the
`Generation`; the engine's steps, finish, errors and a crash are routed to it by request id here,
once. Everyone else (the chat controller, the completion view, the chart, the timeline, the
status bar) listens to the tracker and reads the Generation it hands them.

Steps arrive up to hundreds a second; each goes into the Generation at once, but listeners hear
of them in batches from one redraw timer (~30 Hz): `sig_steps_added(generation, batch)`, then
each frame client (`add_frame_client`: the chart) is asked to draw, which it does when its own
pacing allows, saying whether something is still waiting to be drawn. The timer runs only while
steps arrive or a client waits, so an idle window (or a slow model between tokens) is not woken
30 times a second. When the generation ends the last batch is handed over before
`sig_finished` / `sig_failed`, so a listener never misses a step.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.generation import Generation, ModelRef, SettingsSpan, resolve_seed
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P
from desktop.ui.engine_service import EngineService

FRAME_INTERVAL_MS = 33  # ≈ 30 batches a second, whatever the token rate


class GenerationTracker(QObject):
    sig_started = Signal(object)  # Generation, just sent
    sig_steps_added = Signal(object, object)  # Generation, tuple[StepRecord, ...] (a batch)
    sig_finished = Signal(object)  # Generation, its `done` set
    sig_failed = Signal(object, str, str)  # Generation, kind, message in plain words

    def __init__(self, engine: EngineService, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.live: Generation | None = None  # the generation the engine is working on
        self._published = 0  # steps of `live` already handed to listeners
        # Called on every tick after the batch: draw if due; True while something still waits.
        self._frame_clients: list[Callable[[], bool]] = []
        self._timer = QTimer(self)
        self._timer.setObjectName("generation-redraw")
        self._timer.setInterval(FRAME_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        engine.sig_step_generated.connect(self._on_step)
        engine.sig_generation_finished.connect(self._on_finished)
        engine.sig_request_failed.connect(self._on_failed)
        engine.sig_engine_crashed.connect(self._on_crashed)

    def start(self, kind: str, pieces: P.PromptPieces, settings: SamplerSettings, *,
              model: ModelRef | None = None, prompt_tokens: tuple[int, ...] = (),
              forced_tokens: tuple[int, ...] = (), prefix: tuple[StepRecord, ...] = (),
              prefix_spans: tuple[SettingsSpan, ...] = (),
              template_id: str = "", images: tuple[bytes, ...] = ()) -> Generation:
        """Send a request and return its Generation (the settings in it are those sent)."""
        settings = resolve_seed(settings)
        request_id = self.engine.generate(pieces, settings, prompt_tokens=prompt_tokens,
                                          forced_tokens=forced_tokens, images=images)
        gen = Generation.live(request_id, settings, kind=kind, model=model,
                              prompt_tokens=prompt_tokens, prefix=prefix,
                              prefix_spans=prefix_spans, template_id=template_id)
        self.live, self._published = gen, len(gen)
        self.sig_started.emit(gen)
        return gen

    @property
    def busy(self) -> bool:
        return self.live is not None

    @property
    def ticking(self) -> bool:
        """Whether the redraw timer runs (only while steps arrive or a client waits)."""
        return self._timer.isActive()

    def add_frame_client(self, client: Callable[[], bool]) -> None:
        """`client()` runs on each redraw tick (GUI thread): it draws when due and returns
        whether it still has something to draw (the timer keeps ticking for it)."""
        self._frame_clients.append(client)

    # --- engine events (GUI thread, queued from the engine's reader) ---

    def _on_step(self, request_id: int, record: StepRecord) -> None:
        gen = self.live
        if gen is not None and request_id == gen.request_id:
            gen.extend((record,))  # listeners hear of it on the next tick, in a batch
            if not self._timer.isActive():
                self._timer.start()

    def _tick(self) -> None:
        published = self._publish()
        waiting = [client() for client in self._frame_clients]  # every client draws
        if not published and not any(waiting):
            self._timer.stop()  # nothing new and nothing waiting: sleep until a step comes

    def _publish(self) -> bool:
        gen = self.live
        if gen is not None and len(gen) > self._published:
            batch = gen.steps_since(self._published)
            self._published = len(gen)
            self.sig_steps_added.emit(gen, batch)
            return True
        return False

    def _end(self) -> Generation | None:
        gen = self.live
        if gen is not None:
            self._publish()
            self.live = None
        self._timer.stop()
        return gen

    def _on_finished(self, request_id: int, done: GenerationDone,
                     prompt_tokens: tuple[int, ...]) -> None:
        if self.live is None or request_id != self.live.request_id:
            return
        gen = self._end()
        if gen is not None:
            gen.finish(done, tuple(prompt_tokens))
            self.sig_finished.emit(gen)

    def _on_failed(self, request_id: int, kind: str, message: str) -> None:
        if self.live is None or request_id != self.live.request_id:
            return
        gen = self._end()
        if gen is not None:
            gen.fail(message)
            self.sig_failed.emit(gen, kind, message)

    def _on_crashed(self, event: P.Crashed) -> None:
        gen = self._end()
        if gen is not None:
            gen.fail(event.reason)
            self.sig_failed.emit(gen, "crashed", event.reason)

    def stop(self) -> None:
        """Stop the redraw timer (the window is closing)."""
        self._timer.stop()
