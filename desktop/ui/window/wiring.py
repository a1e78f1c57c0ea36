"""WindowWiring: connects the main window's parts to each other and to the engine. GUI thread.

Kept apart from main_window.py (which builds and lays out) so each file stays readable. A reply's
state is its `Generation`, owned by the chat controller's `GenerationTracker` (which alone routes
the engine's generation events by request id); this module hands the tracker's news to the
chart, the status bar and the completion view, shows in the chart whatever reply the chat asks
for (a clicked token, the branch shown), and runs replays and "continue with this token" from
the Generation the chart shows. It also runs completion mode (no template, no store), the
template panel's token count and the start-up choice of model: the one named on the command
line, else the last one, else the ready Gemma model, so a first start is one click (or none)
from chatting. A loaded model's per-model defaults are `ModelDefaultsWiring`'s (`model_defaults`).

It is handed the window's `WindowParts` and a `new_chat` callback, never the window itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from desktop.core import hardware
from desktop.core.generation import Generation, ModelRef
from desktop.core.model_defaults import is_base_model
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.reasoning import format_of_template, takes_enable_thinking
from desktop.core.steps import StepRecord
from desktop.core.templates.prompt import render_completion
from desktop.ui.chat.embedder import app_embed, remember_choice
from desktop.ui.chat.turns import PromptContext
from desktop.ui.window.model_defaults import ModelDefaultsWiring
from desktop.ui.window.panel_settings import restore_panels, save_panels, still_there
from desktop.ui.window.parts import WindowParts

REMOTE_REPLAY_NOTE = ("Trying other settings on a step, and continuing with another token, need "
                      "a local model: they recompute the step with the model's weights, and a "
                      "remote endpoint only streams what it computed.")


class WindowWiring(QObject):
    def __init__(self, parts: WindowParts, new_chat: Callable[[], None],
                 parent: QObject | None = None) -> None:
        """`new_chat`: what the conversation list's "new" does (the window's New chat)."""
        super().__init__(parent)
        self.parts = w = parts
        self.tracker = tracker = w.chat.tracker  # the one owner of every Generation
        self.completion: Generation | None = None  # the completion being generated
        self.replay_id: int | None = None
        self.tokenize_id: int | None = None
        self._want_ready_model = False
        self._restore_template = ""
        restore_panels(parts)

        w.library.sig_load_requested.connect(w.models.load)
        w.library.sig_eject_requested.connect(w.models.eject)
        w.library.sig_ready_model_found.connect(self._on_ready_model)
        w.library.sig_scan_finished.connect(self._show_model_name)
        w.library.list.currentItemChanged.connect(lambda *_: self._show_selected_file())
        w.models.sig_loading_started.connect(self._on_loading)
        w.models.sig_model_changed.connect(self._on_model_changed)
        w.models.sig_load_failed.connect(self._on_load_failed)
        w.models.sig_engine_crashed.connect(self._on_crashed)

        remember_choice(w.chat_view.attachments, w.settings)  # search documents by meaning
        tracker.sig_started.connect(self._on_started)
        tracker.sig_steps_added.connect(self._on_steps)
        tracker.add_frame_client(w.chart_dock.on_frame)
        # The chart overlays a finished step replayed under the panel's settings when they differ
        # from how it was sampled; its view options (log, fitted y, legend) are remembered.
        w.sampling_panel.sig_settings_changed.connect(w.chart_dock.set_panel_settings)
        w.chart_dock.set_panel_settings(w.sampling_panel.settings())
        w.chart_dock.sig_view_options_changed.connect(
            lambda options: setattr(w.settings, "chart_view", options))
        tracker.sig_finished.connect(self._on_finished)
        tracker.sig_failed.connect(self._on_failed)
        w.engine.sig_step_replayed.connect(self._on_replayed)
        w.engine.sig_tokenized.connect(self._on_tokenized)

        w.chat.sig_conversation_changed.connect(self._on_conversation_changed)
        w.chat.sig_conversations_changed.connect(w.conversations.refresh)
        w.chat.sig_generation_shown.connect(self._show_generation)
        w.chat.thinking.sig_changed.connect(w.template_panel.context_box.set_thinking)
        w.chat.model_loading = lambda: w.models.loading
        w.conversations.sig_conversation_selected.connect(self._open_conversation)
        w.conversations.sig_new_requested.connect(new_chat)
        w.conversations.sig_conversation_deleted.connect(w.chat.forget_conversation)
        w.conversations.sig_message.connect(lambda text: w.status.showMessage(text, 8000))
        w.chat_view.sig_notice_action_triggered.connect(self._on_notice_action)
        w.chat_view.input.textChanged.connect(self.update_preview)
        w.chat_view.images.sig_changed.connect(self.update_preview)
        w.completion_view.sig_generate_requested.connect(self.start_completion)
        w.completion_view.sig_stop_requested.connect(self.stop_completion)

        w.sampling_panel.sig_settings_changed.connect(self._on_sampler_changed)
        w.load_panel.sig_settings_changed.connect(self._on_load_settings_changed)
        w.load_panel.sig_reload_requested.connect(lambda s: w.models.reload(s))
        w.prompt_panel.sig_system_prompt_changed.connect(self._on_prompt_changed)
        w.prompt_panel.sig_instructions_changed.connect(self._on_prompt_changed)
        w.prompt_panel.sig_instructions_placement_changed.connect(self._on_prompt_changed)
        w.template_panel.sig_template_changed.connect(self._on_template_changed)
        w.template_panel.sig_tokenize_requested.connect(self._tokenize)
        w.chart_dock.sig_replay_requested.connect(self._replay)
        w.chart_dock.sig_continue_requested.connect(self._continue_with_token)
        w.chart_dock.sig_bar_count_changed.connect(self._on_bar_count_changed)
        self.model_defaults = ModelDefaultsWiring(parts, parent=self)

    # --- settings in and out ---

    def save_settings(self) -> None:
        save_panels(self.parts)

    def _on_sampler_changed(self, settings: Any) -> None:
        # Only the next request reads the panel: a shown step keeps the settings it was
        # sampled with (its Generation's).
        self.parts.settings.sampler_settings = settings

    def _on_load_settings_changed(self, settings: LoadSettings) -> None:
        self.parts.settings.load_settings = settings

    def _on_prompt_changed(self, *_: object) -> None:
        self.save_settings()
        self.update_preview()

    def _on_template_changed(self, template: Any) -> None:
        if self.parts.models.info is not None and not template.id.startswith("custom:unsaved"):
            self.parts.settings.template_id = template.id
        # A reasoning model's thinking markers, and its Thinking switch, come from its template.
        view = self.parts.chat_view
        view.set_reasoning_format(format_of_template(template.text))
        view.set_thinking_available(takes_enable_thinking(template.text))

    def _on_bar_count_changed(self, n: int) -> None:
        self.parts.settings.chart_top_n = n

    # --- start-up ---

    def start(self, model: str = "") -> None:
        w = self.parts
        w.status.start_sampling()
        w.conversations.refresh()
        w.library.start()
        w.jobs.submit(hardware.detect, on_done=w.load_panel.set_hardware)
        last = w.settings.last_model
        if model:
            w.models.load(model)
        elif last:
            self._restore_template = w.settings.template_id
            w.jobs.submit(still_there, last, on_done=lambda ok: self._on_last_checked(last, ok))
        else:
            self._want_ready_model = True
        self.update_preview()

    def _on_last_checked(self, path: str, exists: bool) -> None:
        m = self.parts.models
        if m.info is not None or m.loading:
            return
        if exists:
            m.load(path)
            return
        self._restore_template = ""
        self._want_ready_model = True
        if self.parts.library.ready_path:
            self._on_ready_model(self.parts.library.ready_path)

    def load_ready_model(self) -> None:
        m, ready = self.parts.models, self.parts.library.ready_path
        if ready and (m.path == ready or m.loading_path == ready):
            return
        if ready:
            m.load(ready)
        else:
            self._want_ready_model = True  # loads when the library has assembled it

    def _on_ready_model(self, path: str) -> None:
        m = self.parts.models
        if self._want_ready_model and m.info is None and not m.loading:
            self._want_ready_model = False
            m.load(path)

    # --- model state ---

    def _show_selected_file(self) -> None:
        path = self.parts.library.selected_path()
        entry = self.parts.library.entries.get(path)
        if entry is not None and not self.parts.models.info:
            self.parts.load_panel.set_model_file(path, entry.report)

    def _on_loading(self, path: str) -> None:
        w = self.parts
        name = w.library.display_name(path)
        w.status.set_loading(name)
        w.library.set_loading(path)
        entry = w.library.entries.get(path)
        w.load_panel.set_model_file(path, entry.report if entry else None)
        w.chat_view.set_empty_text(f"Loading {name}…")

    def _on_model_changed(self, info: ModelInfo | None) -> None:
        w = self.parts
        self._show_model_name()
        w.load_panel.set_model_info(info, w.models.applied)
        w.template_panel.set_model(info)
        self._show_engine_stages(info)
        if info is None:
            w.library.set_loaded("")
            w.chat_view.set_empty_text("No model loaded. Choose one under Models and press Load.")
            return
        if self._restore_template and info.path == w.settings.last_model:
            w.template_panel.select_template(self._restore_template)
        self._restore_template = ""
        w.library.set_loaded(info.path)
        name = w.library.display_name(info.path)
        hint = ""
        if is_base_model(info.architecture, info.chat_templates):
            # A base model (the shipped Gemma) continues text: it opens in Completion. Say so.
            hint = ("\n\nThis is a base model (it has no chat template): it continues text more "
                    "than it answers questions, so it opened in the Completion tab. Load an "
                    "instruction-tuned model for real chat.")
        w.chat_view.set_empty_text(
            f"Chatting with {name}. Type a message below to start.{hint}")
        self.update_preview()
        w.chat.model_ready()

    def _show_model_name(self) -> None:
        """The status bar names a remote model as the library does (ModelInfo.name holds the
        endpoint's id); called again when a scan lists the entry after the load."""
        info, library = self.parts.models.info, self.parts.library
        name = ""
        if info is not None and info.architecture == "remote" and info.path in library.entries:
            name = library.display_name(info.path)
        self.parts.status.set_model(info, name=name)

    def _show_engine_stages(self, info: ModelInfo | None) -> None:
        """The chart offers only the stages this engine reports, and says why (remote)."""
        remote = info is not None and info.architecture == "remote"
        self.parts.chart_dock.set_engine_stages(
            info.available_stages if info else (), info.stages_note if info else "",
            REMOTE_REPLAY_NOTE if remote else "")

    def _on_load_failed(self, path: str, reason: str) -> None:
        w = self.parts
        w.library.set_load_failed(path, reason)
        w.tabs.setCurrentWidget(w.chat_view)  # where the notice is (not Completion's)
        w.chat_view.notice.show_notice(
            f"{w.library.display_name(path)} could not be loaded: {reason}")

    def _on_crashed(self, text: str) -> None:
        w = self.parts
        w.library.set_loaded("")
        w.tabs.setCurrentWidget(w.chat_view)
        w.chat_view.notice.show_notice(text, "reload", "Reload")

    def _on_notice_action(self, action: str) -> None:
        if action == "reload":
            self.parts.models.reload()

    # --- conversations and the template preview ---

    def _open_conversation(self, conversation_id: int) -> None:
        self.parts.tabs.setCurrentWidget(self.parts.chat_view)
        self.parts.chat.open_conversation(conversation_id)

    def _on_conversation_changed(self, conversation_id: int | None) -> None:
        self.parts.conversations.set_current(conversation_id)
        self.update_preview()

    def update_preview(self) -> None:
        w = self.parts
        history = [{"role": m.item.role, "content": m.text()} for m in w.chat_view.messages
                   if m.item.id != "pending"]
        w.template_panel.set_conversation(
            history, w.prompt_panel.system_prompt(), w.prompt_panel.instructions(),
            draft=w.chat_view.input.toPlainText(), placement=w.prompt_panel.placement())
        w.template_panel.context_box.set_images(w.chat_view.image_count())

    def _tokenize(self, pieces: Any) -> None:
        if self.parts.models.info is not None:
            self.tokenize_id = self.parts.engine.tokenize(tuple(pieces))

    def _on_tokenized(self, request_id: int, tokens: Any, _pieces: Any) -> None:
        info = self.parts.models.info
        if request_id == self.tokenize_id and info is not None:
            self.parts.template_panel.set_token_count(len(tokens), info.n_ctx)

    def prompt_context(self) -> PromptContext | None:
        w = self.parts
        info = w.models.info
        if info is None:
            return None
        return PromptContext(
            system_prompt=w.prompt_panel.system_prompt(),
            instructions=w.prompt_panel.instructions(),
            placement=w.prompt_panel.placement(),
            template=w.template_panel.template(),
            sampler=w.sampling_panel.settings(),
            bos=info.bos.text if info.bos else "",
            eos=info.eos.text if info.eos else "",
            model_name=w.library.display_name(info.path),
            model_path=info.path,
            n_ctx=info.n_ctx,
            overflow_policy=w.template_panel.overflow_policy(),
            token_scale=w.chat.token_scale,
            thinking=w.chat_view.thinking_enabled,
            attachments=w.chat_view.attachments.pending(),
            embed=app_embed(w.engine, w.chat_view.attachments.search_model()),
        )

    # --- generations: chart, status bar, completion mode ---

    def _on_started(self, gen: Generation) -> None:
        """Any generation sent (chat or completion): the chart follows it from its first step,
        and a chat reply is shown where it streams (a base model left the window in Completion)."""
        w = self.parts
        w.chart_dock.show_generation(gen)
        w.status.generation_started()
        if gen.kind == "chat" and w.tabs.currentWidget() is w.completion_view:
            w.tabs.setCurrentWidget(w.chat_view)

    def start_completion(self, text: str) -> None:
        w = self.parts
        info = w.models.info
        if info is None:
            w.completion_view.show_error("No model loaded. Choose one under Models and press "
                                         "Load.")
            return
        if w.engine.busy or w.chat.busy:
            return
        pieces = tuple((s.text, s.trusted) for s in render_completion(text).segments)
        w.completion_view.set_busy(True)
        self.completion = self.tracker.start(
            "completion", pieces, w.sampling_panel.settings(),
            model=ModelRef(w.library.display_name(info.path), info.path))

    @property
    def token_ids(self) -> list[int]:
        """The token ids of the reply the chart shows (what it drew, in order)."""
        gen = self.parts.chart_dock.generation
        return [r.token_id for r in gen.steps] if gen is not None else []

    @property
    def completion_id(self) -> int | None:
        """The request id of the completion being generated (None when none is)."""
        return self.completion.request_id if self.completion is not None else None

    def stop_completion(self) -> None:
        if self.completion is not None:
            self.parts.engine.cancel()

    def _on_steps(self, gen: Generation, batch: tuple[StepRecord, ...]) -> None:
        w = self.parts
        if gen is w.chart_dock.generation:
            w.chart_dock.add_steps(batch)
        w.status.note_steps(batch)
        if gen is self.completion:
            w.completion_view.append_batch("".join(r.text for r in batch))

    def _on_finished(self, gen: Generation) -> None:
        w, done = self.parts, gen.done
        if gen is w.chart_dock.generation:
            w.chart_dock.finish()  # the last steps, without waiting for a frame
        if done is None:
            return
        w.status.generation_finished(done)
        if gen is self.completion:
            self.completion = None
            reason = {"cancelled": "Stopped.", "length": "Reached the token limit.",
                      "context": "The context is full."}.get(done.finish_reason, "Done.")
            w.completion_view.end_stream(
                done.text, f"{reason} {done.usage.completion_tokens} tokens, "
                f"{done.timings.tokens_per_second:.1f} tok/s.")
        self.update_preview()

    def _on_failed(self, gen: Generation, _kind: str, message: str) -> None:
        if gen is self.parts.chart_dock.generation:
            self.parts.chart_dock.finish()
        if gen is self.completion:
            self.completion = None
            self.parts.completion_view.show_error(message)

    # --- the chart's inspector ---

    def _show_generation(self, gen: Generation | None, step: int) -> None:
        """The chat asks the chart to show a reply: a clicked token (`step` ≥ 0) always; the
        branch shown (`step` -1) unless a generation is drawing on the chart now."""
        chart = self.parts.chart_dock
        if step < 0 and self.tracker.busy:
            return
        chart.show_generation(gen)
        if gen is not None and step >= 0:
            chart.show()
            chart.raise_()
            chart.select_step(step)

    def _replay(self, step: int, settings: Any) -> None:
        gen = self.parts.chart_dock.generation
        status = self.parts.status
        if gen is None or not gen.prompt_tokens or gen.step(step) is None:
            status.showMessage("Replay needs the reply's prompt tokens: it works on replies "
                               "generated since Openlid started.", 6000)
            return
        if not gen.finished:
            status.showMessage("A step can be replayed once its generation has ended.", 4000)
            return
        context = gen.prompt_tokens + tuple(r.token_id for r in gen.steps[:step])
        record = gen.step(step)
        assert record is not None
        self.replay_id = self.parts.engine.replay(context, record.token_id, step, settings,
                                                  len(gen.prompt_tokens))

    def _on_replayed(self, request_id: int, record: StepRecord) -> None:
        if request_id == self.replay_id:
            self.parts.chart_dock.show_replay(record)

    def _continue_with_token(self, step: int, token_id: int) -> None:
        gen = self.parts.chart_dock.generation
        if self.tracker.busy or gen is None:
            return
        reason = self.parts.chat.can_continue_with_token(gen)
        if reason:
            self.parts.status.showMessage(reason, 6000)
            return
        self.parts.tabs.setCurrentWidget(self.parts.chat_view)
        self.parts.chat.continue_with_token(gen, step, token_id)
