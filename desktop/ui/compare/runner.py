"""CompareRunner: a comparison generated on the window's engine, run after run. GUI thread only.

Drives a pure `core.compare.CompareJob` through `EngineService`: it asks for the job's next run,
sends it (capture on), feeds the job each StepRecord of that request and, when the request is
done, starts the next one. Only events of its own request ids are taken; the chat and the chart
ignore those ids in turn. Everything arrives through EngineService's queued signals, so every
signal here fires on the GUI thread with immutable data. `cancel` stops the running generation
(the engine answers Done "cancelled") and ends the comparison with what finished.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.compare import CompareJob, CompareReport
from desktop.core.steps import GenerationDone, StepRecord
from desktop.ui.engine_service import EngineService


class CompareRunner(QObject):
    sig_run_started = Signal(object)  # CompareRun
    sig_step_added = Signal(object, object)  # CompareRun, StepRecord
    sig_sample_finished = Signal(object)  # Sample
    sig_finished = Signal(object)  # CompareReport (cancelled / error say how it ended)

    def __init__(self, engine: EngineService, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.job: CompareJob | None = None
        self.request_id: int | None = None
        engine.sig_step_generated.connect(self._on_step)
        engine.sig_generation_finished.connect(self._on_finished)
        engine.sig_request_failed.connect(self._on_failed)
        engine.sig_engine_crashed.connect(self._on_crashed)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def why_not(self) -> str:
        """Why a comparison cannot start now, in words ("" when it can)."""
        if self.busy:
            return "A comparison is already running."
        if self.engine.model is None:
            return "No model is loaded. Load one in the main window (Models) first."
        if self.engine.busy or self.engine.loading_id is not None:
            return "The engine is busy with another reply or a model load; try again when it ends."
        return ""

    def start(self, job: CompareJob) -> None:
        """Run `job` to its end; check `why_not()` first."""
        self.job = job
        self._next()

    def cancel(self) -> None:
        if self.job is None:
            return
        self.job.cancel()
        if self.request_id is not None:
            self.engine.cancel()  # the engine answers Done("cancelled"); that ends the job
        else:
            self._end()

    def report(self) -> CompareReport | None:
        return self.job.report() if self.job is not None else None

    def _next(self) -> None:
        job = self.job
        if job is None:
            return
        run = job.start_next()
        if run is None:
            self._end()
            return
        self.request_id = self.engine.generate(((job.prompt, False),), run.settings,
                                               capture=True)
        self.sig_run_started.emit(run)

    def _end(self) -> None:
        job, self.job, self.request_id = self.job, None, None
        if job is not None:
            self.sig_finished.emit(job.report())

    # --- engine events (GUI thread, queued by EngineService) ---

    def _on_step(self, request_id: int, record: StepRecord) -> None:
        if self.job is None or request_id != self.request_id or self.job.current is None:
            return
        self.job.add_step(record)
        self.sig_step_added.emit(self.job.current, record)

    def _on_finished(self, request_id: int, done: GenerationDone, _tokens: Any) -> None:
        if self.job is None or request_id != self.request_id:
            return
        self.request_id = None
        sample = self.job.finish(done)
        if sample is not None:
            self.sig_sample_finished.emit(sample)
        self._next()

    def _on_failed(self, request_id: int, _kind: str, message: str) -> None:
        if self.job is None or request_id != self.request_id:
            return
        self.job.fail(message)
        self._end()

    def _on_crashed(self, event: Any) -> None:
        if self.job is None:
            return
        self.job.fail(str(getattr(event, "reason", "The engine stopped.")))
        self._end()
