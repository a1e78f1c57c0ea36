"""ModelController: which model is loaded, loading or wanted, and what went wrong. GUI thread only.

Sends load and unload requests to `EngineService` and turns its answers into a few signals the
window's parts follow (library, status bar, panels, chat). Remembers the last model in
`AppSettings` once it has loaded, and what to reload after an engine crash. Never waits: a load is a
request; `sig_model_changed` arrives when the engine answers.

A load that is not given its settings uses the ones saved for that model when there are some
(`remembered_load`, set by `ui.window.model_defaults`), else the Load panel's; `applied` is what
was sent and `applied_saved` says whether it came from the model's saved settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.engine import protocol as P
from desktop.ui.engine_service import EngineService
from desktop.ui.settings import AppSettings

log = logging.getLogger("openlid.models")


def crash_words(event: P.Crashed) -> str:
    text = event.reason
    if event.telling_line:
        text += f" Last engine message: “{event.telling_line}”."
    return text + " Your conversation is kept; press Reload to start the model again."


class ModelController(QObject):
    sig_loading_started = Signal(str)  # model path
    sig_model_changed = Signal(object)  # ModelInfo after a load, None after eject or a crash
    sig_load_failed = Signal(str, str)  # model path, the reason in plain words
    sig_engine_crashed = Signal(str)  # what happened, in plain words

    def __init__(self, engine: EngineService, settings: AppSettings,
                 load_settings: Callable[[], LoadSettings] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self._load_settings = load_settings or (lambda: settings.load_settings)
        self.info: ModelInfo | None = None
        self.loading_path = ""
        self.wanted_path = ""  # the model the person chose last: what Reload loads
        self.applied: LoadSettings | None = None
        self.applied_saved = False  # `applied` are the settings saved for this model
        # The load settings saved for a model path, if any (None: the Load panel's are used).
        self.remembered_load: Callable[[str], LoadSettings | None] = lambda _path: None
        self._load_id: int | None = None
        engine.sig_model_loaded.connect(self._on_loaded)
        engine.sig_request_failed.connect(self._on_failed)
        engine.sig_model_unloaded.connect(self._on_unloaded)
        engine.sig_engine_crashed.connect(self._on_crashed)

    @property
    def loading(self) -> bool:
        return bool(self.loading_path)

    @property
    def path(self) -> str:
        return self.info.path if self.info is not None else ""

    def load(self, path: str, settings: LoadSettings | None = None) -> None:
        if self.engine.busy:
            self.engine.cancel()  # a load replaces the model: end the reply first
        remembered = self.remembered_load(path) if settings is None else None
        self.applied_saved = remembered is not None
        settings = settings or remembered or self._load_settings()
        self.wanted_path = path
        self.loading_path = path
        self.applied = settings
        self._load_id = self.engine.load(path, settings)
        log.info("loading %s (%s)", path, settings)
        self.sig_loading_started.emit(path)

    def reload(self, settings: LoadSettings | None = None) -> None:
        path = self.wanted_path or self.path or self.settings.last_model
        if path:
            self.load(path, settings)

    def eject(self) -> None:
        if self.engine.busy:
            self.engine.cancel()
        self.wanted_path = ""
        if self.info is not None or self.loading:
            self.loading_path = ""
            self._load_id = None
            self.engine.unload()

    def _on_loaded(self, request_id: int, info: ModelInfo) -> None:
        if request_id != self._load_id:
            return
        self.info = info
        self.loading_path = ""
        self._load_id = None
        self.settings.last_model = info.path
        log.info("loaded %s: %s, %s, %d/%d layers on the GPU, %.0f ms", info.path,
                 info.architecture, info.backend, info.n_layers_offloaded, info.n_layer,
                 info.load_ms)
        self.sig_model_changed.emit(info)

    def _on_failed(self, request_id: int, kind: str, message: str) -> None:
        if request_id != self._load_id:
            return
        path = self.loading_path
        self.loading_path = ""
        self._load_id = None
        self.info = None
        log.warning("could not load %s: %s (%s)", path, message, kind)
        self.sig_load_failed.emit(path, message)
        self.sig_model_changed.emit(None)

    def _on_unloaded(self, _request_id: int) -> None:
        if self.loading:
            return  # an unload answered after a newer load was asked for
        self.info = None
        self.sig_model_changed.emit(None)

    def _on_crashed(self, event: P.Crashed) -> None:
        was_loading = self.loading_path
        log.error("the engine crashed: %s %s (log: %s)", event.reason, event.telling_line,
                  event.log_path)
        self.info = None
        self.loading_path = ""
        self._load_id = None
        if was_loading:
            self.sig_load_failed.emit(was_loading, f"{event.reason} {event.telling_line}".strip())
        self.sig_engine_crashed.emit(crash_words(event))
        self.sig_model_changed.emit(None)

    def display_name(self, path: str = "") -> str:
        path = path or self.path or self.loading_path
        if self.info is not None and path == self.info.path and self.info.name:
            return self.info.name
        return Path(path).stem if path else ""
