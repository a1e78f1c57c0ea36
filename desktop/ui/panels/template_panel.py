"""TemplatePanel: the prompt template (source, preset picker, editor) and the exact prompt it makes.

GUI thread for every widget; rendering runs on a `JobService` pool thread (`template_preview`),
250 ms after the last change, with the previous render cancelled, so a slow or hostile template
(bounded to 1 s by `core.templates.prompt`) never stalls typing.

API
- `TemplatePanel(store: TemplateStore | None = None, jobs: JobService | None = None)` — saved
  templates live in `store` (default: `<data dir>/templates`); renders run on `jobs` (default:
  a private one-thread service, stopped by `shutdown()`).
- `set_model(info: ModelInfo | None)` — picks the model's own template, else a preset matched to
  it (Gemma for a gemma3 file without one), else ChatML; n_ctx for the meter.
- `set_conversation(messages: list[dict], system: str, instructions: str, *, draft: str = "",
  placement: str = "system")` — `messages` are the history ({"role", "content"}); `draft` is
  the message being typed.
- `select_template(template_id) -> bool`, `template() -> PromptTemplate` (with unsaved edits),
  `rendered() -> RenderedPrompt | None` (None while rendering or on error),
  `save_template(name) -> PromptTemplate | None`, `reset_to_source()`.
- `set_token_count(n, n_ctx)` — the engine's count for the last `sig_tokenize_requested`.
- `overflow_policy()`, `set_overflow_policy(id)`; ids in `OVERFLOW_POLICIES`.
- `shutdown()` — cancel renders; the main window calls it from closeEvent.
- Signals: `sig_template_changed(object PromptTemplate)`, `sig_tokenize_requested(object pieces:
  tuple[(text, trusted)])`, `sig_overflow_policy_changed(str)`.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.core import paths
from desktop.core.model_info import ModelInfo
from desktop.core.templates.prompt import (
    PromptTemplate,
    RenderedPrompt,
    choose_template,
    find_template,
    model_templates_of,
    presets,
    reset_to_source,
)
from desktop.core.templates.store import TemplateStore
from desktop.ui.job_service import JobService
from desktop.ui.panels.context_meter import ContextBox
from desktop.ui.panels.controls import hint_label
from desktop.ui.panels.prompt_view import RenderedView, TemplateEditor, legend_label
from desktop.ui.panels.template_preview import (
    PreviewRequest,
    PreviewResult,
    estimate_tokens,
    render_preview,
    split_tokens,
)

DEBOUNCE_MS = 250
OVERFLOW_POLICIES = (("stop", "Stop at the limit"), ("truncate_middle", "Truncate the middle"),
                     ("rolling_window", "Rolling window (drop oldest turns)"))
_SOURCE_WORDS = {"model": "from the model file", "preset": "built-in preset",
                 "custom": "saved by you"}


class TemplatePanel(QWidget):
    sig_template_changed = Signal(object)  # PromptTemplate
    sig_tokenize_requested = Signal(object)  # tuple[(text, trusted)]
    sig_overflow_policy_changed = Signal(str)

    def __init__(self, store: TemplateStore | None = None, jobs: JobService | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TemplatePanel")
        self._store = store or TemplateStore(paths.data_dir() / "templates")
        self._own_jobs = jobs is None
        self._jobs = jobs or JobService("openlid-template-render", max_threads=1, parent=self)
        self._model: ModelInfo | None = None
        self._base: PromptTemplate = presets()["chatml"]
        self._why = ""
        self._history: tuple[tuple[str, str], ...] = ()
        self._system = self._instructions = self._draft = ""
        self._placement = "system"
        self._serial = 0
        self._cancel = threading.Event()
        self._job_id = 0
        self._result: PreviewResult | None = None
        self._tokens: int | None = None
        self._n_ctx = 0
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._start_render)
        self._build()
        self._show_template(self._base, announce=False)

    # --- building ---

    def _build(self) -> None:
        self.combo = QComboBox()
        self.combo.setAccessibleName("Prompt template")
        self.combo.setToolTip("The chat template that lays the conversation out for the model")
        self.source_label = hint_label()
        self.save_button = QPushButton("Save as…")
        self.save_button.setToolTip("Save this template (with your edits) under a name")
        self.reset_button = QPushButton("Reset to source")
        self.reset_button.setToolTip("Drop your edits, or go back to the template a saved one "
                                     "was made from")
        self.editor = TemplateEditor()
        self.editor.setToolTip("Jinja source in the Hugging Face chat-template format")
        self.error_label = hint_label(warning=True)
        self.error_label.setAccessibleName("Template error")
        self.view = RenderedView()
        self.view.setToolTip("The exact text sent to the model for this conversation")
        self.notes_label = hint_label()
        self.context_box = ContextBox(OVERFLOW_POLICIES)
        self.overflow_combo = self.context_box.overflow_combo

        top = QHBoxLayout()
        top.addWidget(QLabel("Template"))
        top.addWidget(self.combo, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        editor_box = QWidget()
        editor_column = QVBoxLayout(editor_box)
        editor_column.setContentsMargins(0, 0, 0, 0)
        editor_column.addWidget(self.editor, 1)
        editor_column.addWidget(self.error_label)
        view_box = QWidget()
        view_column = QVBoxLayout(view_box)
        view_column.setContentsMargins(0, 0, 0, 0)
        view_column.addWidget(QLabel("<b>Rendered prompt</b>"))
        view_column.addWidget(legend_label())
        view_column.addWidget(self.view, 1)
        view_column.addWidget(self.notes_label)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(editor_box)
        splitter.addWidget(view_box)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([200, 300])

        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 6)
        column.addLayout(top)
        column.addWidget(self.source_label)
        column.addLayout(buttons)
        column.addWidget(splitter, 1)
        column.addWidget(self.context_box)

        self._fill_combo()
        self.combo.activated.connect(self._on_combo)
        self.editor.textChanged.connect(self._on_edited)
        self.save_button.clicked.connect(self._ask_save)
        self.reset_button.clicked.connect(self.reset_to_source)
        self.overflow_combo.currentIndexChanged.connect(
            lambda _i: self.sig_overflow_policy_changed.emit(self.overflow_policy()))

    def _model_templates(self) -> dict[str, str]:
        return dict(self._model.chat_templates) if self._model is not None else {}

    def _fill_combo(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        groups = (model_templates_of(self._model_templates()), list(presets().values()),
                  self._store.templates())
        for group in groups:
            if group and self.combo.count():
                self.combo.insertSeparator(self.combo.count())
            for template in group:
                self.combo.addItem(template.name, template.id)
        self.combo.setCurrentIndex(max(0, self.combo.findData(self._base.id)))
        self.combo.blockSignals(False)

    # --- public API ---

    def set_model(self, info: ModelInfo | None) -> None:
        self._model = info
        self._n_ctx = info.n_ctx if info is not None else 0
        self._tokens = None
        if info is not None:
            chosen = choose_template(info.chat_templates, info.architecture, info.name)
            if chosen.source == "model":
                self._why = "the model file's own template"
            else:
                self._why = (f"chosen for {info.architecture or 'this model'}: the model file "
                             "carries no template")
        else:
            chosen, self._why = self._base, ""
        self._fill_combo()
        self._show_template(chosen, announce=True)

    def set_conversation(self, messages: list[dict[str, Any]], system: str, instructions: str,
                         *, draft: str = "", placement: str = "system") -> None:
        self._history = tuple((str(m.get("role", "")), str(m.get("content", "")))
                              for m in messages)
        self._system, self._instructions = system, instructions
        self._draft, self._placement = draft, placement
        self._schedule()

    def select_template(self, template_id: str) -> bool:
        try:
            template = find_template(template_id, model_templates=self._model_templates(),
                                     custom=self._store.templates())
        except KeyError:
            self._show_error(f"There is no template “{template_id}”.", None)
            return False
        self._why = ""
        self._show_template(template, announce=True)
        return True

    def template(self) -> PromptTemplate:
        text = self.editor.toPlainText()
        if self._base.raw or text == self._base.text:
            return self._base
        based_on = self._base.based_on if self._base.source == "custom" else self._base.id
        return self._base.replace(id="custom:unsaved", name=f"{self._base.name} (edited)",
                                  source="custom", text=text, based_on=based_on)

    def edited(self) -> bool:
        return self.template() is not self._base

    def rendered(self) -> RenderedPrompt | None:
        result = self._result
        if result is None or result.serial != self._serial or self._debounce.isActive():
            return None
        return result.rendered

    def save_template(self, name: str) -> PromptTemplate | None:
        if not name.strip():
            self._show_error("A saved template needs a name.", None)
            return None
        try:
            saved = self._store.save_as(self._base, name, self.editor.toPlainText())
        except (OSError, ValueError) as exc:
            self._show_error(f"Could not save the template: {exc}", None)
            return None
        self._base, self._why = saved, ""
        self._fill_combo()
        self._show_template(saved, announce=True)
        return saved

    def reset_to_source(self) -> None:
        if self.edited():
            self._show_template(self._base, announce=True)
            return
        try:
            source = reset_to_source(self._base, model_templates=self._model_templates(),
                                     custom=self._store.templates())
        except KeyError:
            return  # already pristine
        self._show_template(source, announce=True)

    def set_token_count(self, n: int, n_ctx: int) -> None:
        self._tokens, self._n_ctx = n, n_ctx
        self._update_meter()

    def overflow_policy(self) -> str:
        return str(self.overflow_combo.currentData())

    def set_overflow_policy(self, policy: str) -> None:
        self.overflow_combo.setCurrentIndex(max(0, self.overflow_combo.findData(policy)))

    def shutdown(self) -> None:
        self._debounce.stop()
        self._cancel.set()
        self._jobs.forget(self._job_id)  # a shared service must not call back a closed panel
        if self._own_jobs:
            self._jobs.stop()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    # --- reacting ---

    def _show_template(self, template: PromptTemplate, *, announce: bool) -> None:
        self._base = template
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(max(0, self.combo.findData(template.id)))
        self.combo.blockSignals(False)
        self.editor.blockSignals(True)
        self.editor.setPlainText(template.text)
        self.editor.blockSignals(False)
        self.editor.setReadOnly(template.raw)
        self.editor.setPlaceholderText(
            "No template: the text is sent exactly as typed." if template.raw else "")
        self._update_source_label()
        self._schedule()
        if announce:
            self.sig_template_changed.emit(self.template())

    def _update_source_label(self) -> None:
        base = self._base
        words = f"{_SOURCE_WORDS.get(base.source, base.source)}"
        if self._why and not self.edited():
            words += f" — {self._why}"
        if self.edited():
            words = "edited, not saved — Save as… keeps it, Reset drops the edits"
        self.source_label.setText(f"Source: {words}.")
        self.source_label.setVisible(True)
        self.reset_button.setEnabled(self.edited() or base.source == "custom")

    def _on_combo(self, index: int) -> None:
        template_id = self.combo.itemData(index)
        if isinstance(template_id, str):
            self.select_template(template_id)

    def _on_edited(self) -> None:
        self._update_source_label()
        self._schedule()

    def _schedule(self) -> None:
        # Every change invalidates the shown result at once; the render waits for a pause.
        self._serial += 1
        self._cancel.set()
        self._debounce.start()

    def _start_render(self) -> None:
        self._cancel = threading.Event()
        template = self.template()
        if template is not self._base:
            self.sig_template_changed.emit(template)
        model = self._model
        request = PreviewRequest(
            serial=self._serial, template=template, history=self._history,
            system=self._system, instructions=self._instructions, draft=self._draft,
            placement=self._placement,
            bos_token=model.bos.text if model is not None and model.bos else None,
            eos_token=model.eos.text if model is not None and model.eos else None,
        )
        self.context_box.token_label.setText("Tokens: rendering…")
        # The previous render's answer is stale: drop its callback (its cancel event is set).
        self._jobs.forget(self._job_id)
        self._job_id = self._jobs.submit(render_preview, request, self._cancel,
                                         on_done=self._on_rendered)

    def _on_rendered(self, result: PreviewResult) -> None:
        if result.serial != self._serial:
            return  # a newer edit is on its way
        self._result = result
        if result.rendered is None:
            if result.error_kind == "nothing":
                self._show_error("", None)
                self.view.show_prompt(None, placeholder="Write a message or a system prompt "
                                      "to see the exact prompt.")
            else:
                self._show_error(result.error, result.error_line)
                self.view.show_prompt(None, placeholder="No prompt: the template failed.")
            self.notes_label.setVisible(False)
            self._tokens = None
            self._update_meter()
            return
        self._show_error("", None)
        model = self._model
        extra = [t.text for t in (model.bos, model.eos, model.eot) if t] if model else []
        self.view.show_prompt(result.rendered, extra)
        self.notes_label.setText(" ".join(result.rendered.notes))
        self.notes_label.setVisible(bool(result.rendered.notes))
        self._tokens = None
        self._update_meter()
        if model is not None:
            pieces = tuple((s.text, s.trusted) for s in result.rendered.segments)
            self.sig_tokenize_requested.emit(pieces)

    def _show_error(self, message: str, line: int | None) -> None:
        text = f"Line {line}: {message}" if message and line else message
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))
        self.editor.set_error_line(line if message else None)

    def _update_meter(self) -> None:
        result = self._result
        if result is None or result.rendered is None or result.serial != self._serial:
            self.context_box.show_counts(None, self._n_ctx, exact=False, how="")
            return
        exact = self._tokens is not None
        n = self._tokens if self._tokens is not None else estimate_tokens(len(result.rendered.text))
        how = "estimated: no model loaded" if self._model is None else "counting…"
        self.context_box.show_counts(split_tokens(result.part_chars, n), self._n_ctx,
                                     exact=exact, how=how)

    def _ask_save(self) -> None:
        name, ok = QInputDialog.getText(self, "Save template", "Template name:",
                                        text=self._base.name if self._base.source == "custom"
                                        else "")
        if ok:
            self.save_template(name)
