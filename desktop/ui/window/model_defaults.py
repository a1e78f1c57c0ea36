"""ModelDefaultsWiring: per-model defaults applied when a model loads. GUI thread only.

When a model finishes loading, the Sampling panel gets, in this order of preference:
1. the settings the person saved for this model ("Save as this model's defaults"; the load
   settings saved with them were already used for the load, by `ModelController`);
2. else the author's recommended values (`core.model_defaults.read_author_values`, read on a
   job thread while the model loads) laid over the person's own settings, and for a base model
   (no chat template) Openlid's repeat penalty; a base model also opens in the Completion tab;
3. else the person's own settings, unchanged.

"The person's own settings" are the panel's as they were before defaults were last applied,
as long as the panel has not been touched since: one model's defaults never leak into the next
model's. Whatever is applied goes through `SamplingPanel.set_settings`, so the panel shows what
will be sampled, and the `ModelDefaultsBar` above it names where it came from and what differs.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core import model_defaults as md
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.model_settings import ModelSettingsStore, RememberedSettings
from desktop.core.sampling import SamplerSettings
from desktop.ui.panels.model_defaults import ModelDefaultsBar
from desktop.ui.window.parts import WindowParts

log = logging.getLogger("openlid.models")

BASE_WORDS = f"Completion, {md.describe(md.BASE_MODEL_VALUES)} ({md.BASE_MODEL_NOTE})"


class ModelDefaultsWiring(QObject):
    sig_applied = Signal(str)  # the bar's source line, once a loaded model's defaults are set

    def __init__(self, parts: WindowParts, store: ModelSettingsStore | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.parts = w = parts
        self.store = store or ModelSettingsStore()
        self.bar = ModelDefaultsBar()
        if not self.bar.place_above(w.sampling_panel):
            log.warning("the sampling panel is not in a dock: the model defaults bar is not shown")
        self.info: ModelInfo | None = None
        self.author: md.AuthorValues | None = None
        self.author_problem = ""
        self.remembered: RememberedSettings | None = None
        self.base_model = False
        self.source = ""
        self._path = ""  # the model whose author values are read / were read
        self._applied_for = ""  # the model path the current defaults were applied for
        self._job = 0
        self._own: SamplerSettings | None = None  # the person's settings before defaults
        self._auto: SamplerSettings | None = None  # what the defaults set the panel to
        self._completion_by_us = False
        self._last_model = ""  # the model whose defaults were applied last
        w.models.remembered_load = self._remembered_load
        w.models.sig_loading_started.connect(self._on_loading)
        w.models.sig_model_changed.connect(self._on_model_changed)
        w.sampling_panel.sig_settings_changed.connect(lambda _s: self._refresh())
        w.load_panel.sig_settings_changed.connect(lambda _s: self._refresh())
        self.bar.sig_apply_author_requested.connect(self.apply_author)
        self.bar.sig_save_requested.connect(self.save)
        self.bar.sig_reset_requested.connect(self.reset)

    # --- loading ---

    def _remembered_load(self, path: str) -> LoadSettings | None:
        remembered = self.store.get(path)
        return remembered.load if remembered is not None else None

    def _on_loading(self, path: str) -> None:
        w = self.parts
        self.bar.clear()  # the model it described is being replaced
        self._read_author(path)
        note = ""
        if w.models.applied_saved and w.models.applied is not None:
            w.load_panel.set_settings(w.models.applied)  # the panel shows what is loaded
            note = (f"These are the settings saved for {w.library.display_name(path)}: it loads "
                    "with them (Model defaults, above the Sampling panel).")
        w.load_panel.set_saved_note(note)

    def _read_author(self, path: str) -> None:
        """The author's values: at once from the library's GGUF report or a small
        generation_config.json, else (a GGUF the library has not read) on a job thread."""
        if self._job:
            self.parts.jobs.forget(self._job)
            self._job = 0
        self._path, self._applied_for = path, ""
        self.author, self.author_problem = None, ""
        entry = self.parts.library.entries.get(path)
        report = entry.report if entry is not None else None
        if path.startswith("remote:"):
            return
        if report is not None:
            self.author = md.author_values_from_gguf(report.metadata)
        elif not path.lower().endswith(".gguf"):
            try:
                self.author = md.read_author_values(path)
            except md.ModelDefaultsError as exc:
                self.author_problem = str(exc)
        else:
            self._job = self.parts.jobs.submit(
                md.read_author_values, path,
                on_done=lambda values: self._on_author(path, values, ""),
                on_error=lambda exc: self._on_author(path, None, str(exc)))

    def _on_author(self, path: str, values: md.AuthorValues | None, problem: str) -> None:
        """A job's answer. Arriving after the model loaded, the values are applied only while
        the panel still shows what the load set (never over the person's edits)."""
        if path != self._path:
            return
        self._job = 0
        self.author, self.author_problem = values, problem
        untouched = self.parts.sampling_panel.settings() == self._auto
        if self._applied_for == path and self.remembered is None and untouched and values:
            own = self._own if self._own is not None else self.parts.sampling_panel.settings()
            self._set_panel(self._recommended(own))
            self.source = self._source_words()
            self.sig_applied.emit(self.source)
        self._refresh()

    def _on_model_changed(self, info: ModelInfo | None) -> None:
        self.info = info
        if info is None:
            self.remembered = None
            if not self.parts.models.wanted_path:
                self._last_model = ""  # ejected: loading it again applies its defaults again
            self.bar.clear()
            return
        if info.path != self._path:  # loaded without a loading signal
            self._read_author(info.path)
        self._apply(info)

    def _apply(self, info: ModelInfo) -> None:
        """Set the panel to the loaded model's defaults; a reload of the model already loaded
        (new load settings, after a crash) keeps the panel as it is."""
        reload = info.path == self._last_model
        self._applied_for = self._last_model = info.path
        self.base_model = md.is_base_model(info.architecture, info.chat_templates)
        self.remembered = self.store.get(info.path)
        self.bar.show_problem(self.store.problem)
        if not reload:
            current = self.parts.sampling_panel.settings()
            own = self._own if self._own is not None and current == self._auto else current
            self._own = own
            self._set_panel(self._recommended(own) if self.remembered is None
                            else self.remembered.sampler)
            self._switch_mode()
        self.source = self._source_words()
        log.info("model defaults for %s: %s", info.path, self.source)
        self._refresh()
        self.sig_applied.emit(self.source)

    def _set_panel(self, settings: SamplerSettings) -> None:
        self.parts.sampling_panel.set_settings(settings)
        self._auto = self.parts.sampling_panel.settings()  # as shown (clamped, if it had to be)

    def _recommended(self, own: SamplerSettings) -> SamplerSettings:
        """The author's values over `own`, then a base model's repeat penalty unless the
        author chose one."""
        values: dict[str, Any] = dict(self.author.values) if self.author is not None else {}
        if self.base_model and "repeat_penalty" not in values:
            values.update(md.BASE_MODEL_VALUES)
        return own.replace(**values)

    def _switch_mode(self) -> None:
        """A base model opens in Completion; the next chat model goes back to Chat, unless the
        person moved between the tabs themselves."""
        w = self.parts
        if self.base_model:
            self._completion_by_us = w.tabs.currentWidget() is not w.completion_view
            w.tabs.setCurrentWidget(w.completion_view)
        elif self._completion_by_us:
            self._completion_by_us = False
            if w.tabs.currentWidget() is w.completion_view:
                w.tabs.setCurrentWidget(w.chat_view)

    # --- the bar's buttons ---

    def apply_author(self) -> None:
        if self.author is not None:
            panel = self.parts.sampling_panel
            panel.set_settings(self.author.applied_to(panel.settings()))

    def save(self) -> None:
        info = self.info
        if info is None:
            return
        load = None if info.architecture == "remote" else self.parts.load_panel.settings()
        try:
            self.remembered = self.store.save(info.path, self.parts.sampling_panel.settings(),
                                              load)
        except OSError as exc:
            self.bar.show_problem(f"The settings could not be saved: {exc}")
            return
        self.bar.show_problem(self.store.problem)
        # The next model starts from the settings from before this one's defaults, if the
        # panel is still what was saved.
        self._auto = self.remembered.sampler
        self.source = self._source_words()
        self._refresh()
        self.parts.status.showMessage(f"Saved as the defaults of {self._name()}.", 6000)

    def reset(self) -> None:
        """Forget this model's saved settings; the panel goes back to its recommended values
        over the person's own settings."""
        info = self.info
        if info is None:
            return
        try:
            self.store.forget(info.path)
        except OSError as exc:
            self.bar.show_problem(f"The saved settings could not be removed: {exc}")
            return
        self.bar.show_problem(self.store.problem)
        self.remembered = None
        own = self._own if self._own is not None else self.parts.sampling_panel.settings()
        self._set_panel(self._recommended(own))
        self.source = self._source_words()
        self._refresh()

    # --- in words ---

    def _name(self) -> str:
        return self.parts.library.display_name(self.info.path) if self.info is not None else ""

    def _source_words(self) -> str:
        name = self._name()
        if self.remembered is not None:
            what = "sampler and load settings" if self.remembered.load else "sampler settings"
            when = self.remembered.saved_words
            return f"{name} — your saved {what}" + (f" ({when})" if when else "")
        parts = []
        if self.author is not None and self.author.values:
            parts.append(f"author's {self.author.source}: {md.describe(self.author.values)}")
        if self.base_model:
            author_penalty = self.author is not None and "repeat_penalty" in self.author.values
            parts.append("base model: Completion" if author_penalty
                         else f"base model: {BASE_WORDS}")
        if not parts:
            return f"{name} — no recommended values: your own settings"
        return f"{name} — " + "; ".join(parts)

    def _refresh(self) -> None:
        """The bar's details: what differs from the defaults and from the author's values."""
        info = self.info
        if info is None or self._applied_for != info.path:
            return
        panel = self.parts.sampling_panel.settings()
        lines = []
        if self.remembered is not None:
            diffs = md.differences(panel, _fields(self.remembered.sampler), "saved")
            if self.remembered.load is not None:
                diffs += md.differences(self.parts.load_panel.settings(),
                                        _fields(self.remembered.load), "saved")
            lines.append("Changed since saved: " + "; ".join(diffs) if diffs
                         else "The panels match the saved settings.")
        elif self._auto is not None and panel != self._auto:
            # The author's fields get their own line below.
            covered = self.author.values if self.author is not None else {}
            since = {k: v for k, v in _fields(self._auto).items() if k not in covered}
            diffs = md.differences(panel, since, "was")
            if diffs:
                lines.append("Changed since loaded: " + "; ".join(diffs))
        author_differs = False
        if self.author is not None and self.author.values:
            diffs = md.differences(panel, self.author.values, "author")
            author_differs = bool(diffs)
            if self.remembered is not None or diffs:
                lines.append(f"Author's values ({self.author.source}): "
                             f"{md.describe(self.author.values)}"
                             + (" — the panel differs: " + "; ".join(diffs) if diffs
                                else " — the panel has them."))
        if self.author is not None and self.author.notes:
            lines.append("Read as: " + "; ".join(self.author.notes) + ".")
        if self.author is not None and self.author.skipped:
            lines.append("Not applied: " + "; ".join(self.author.skipped) + ".")
        if self.author_problem:
            lines.append(f"The author's values were not read: {self.author_problem}")
        self.bar.show_state(self.source, "\n".join(lines),
                            author=self.author is not None and bool(self.author.values),
                            author_differs=author_differs,
                            saved=self.remembered is not None)


def _fields(settings: SamplerSettings | LoadSettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
