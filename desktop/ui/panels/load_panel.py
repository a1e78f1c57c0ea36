"""LoadPanel: how a model is loaded (`LoadSettings`), what the hardware offers, whether it fits.

GUI thread only. The panel never touches disk or the engine: the caller runs `check_gguf` and
`hardware.detect()` off the GUI thread and hands the results in. The fit estimate
(`core.fit.estimate_fit`) is pure arithmetic plus one read of /proc/meminfo, so it is redone on
the GUI thread after every change.

API
- `settings() -> LoadSettings`, `set_settings(LoadSettings)` (never raises; bad values are
  clamped and the message says so).
- `set_model_file(path, report: GgufReport | None)` — the file the next load uses; its metadata
  feeds the estimate (None: a rough estimate from the file size).
- `set_model_info(info: ModelInfo | None, applied: LoadSettings | None = None)` — after a load
  (or None after an unload): what this llama.cpp build can offload, and the settings in effect.
- `set_hardware(HardwareInfo)` — GPUs and their free memory, for the estimate.
- `set_saved_note(text)` — where the settings shown came from, when not from the panel (the
  settings saved for the model being loaded); "" hides it.
- `refresh_estimate()` — redo the estimate (free memory changes over time).
- `estimate() -> FitEstimate | None`.
- Signals: `sig_reload_requested(object LoadSettings)` (the "Reload to apply" button),
  `sig_settings_changed(object LoadSettings)`.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import fit
from desktop.core.gguf_file.check import GgufReport
from desktop.core.hardware import HardwareInfo
from desktop.core.model_info import FLASH_ATTN_MODES, KV_CACHE_TYPES, LoadSettings, ModelInfo
from desktop.core.sampling import SettingsError
from desktop.ui.panels.controls import NumberField, fill_with_scroll, hint_label
from desktop.ui.panels.draft_panel import DraftPanel

_DEFAULTS = LoadSettings()
_CORES = os.cpu_count() or 4
_FLASH_WORDS = {"auto": "Auto", "on": "On", "off": "Off"}
_VERDICT_COLOURS = {fit.FIT_FITS: "#2e9d4f", fit.FIT_TIGHT: "#d08a00", fit.FIT_WONT: "#d04040",
                    fit.FIT_UNKNOWN: "#808080"}

TIPS = {
    "n_gpu_layers": "How many of the model's layers run on the GPU (the rest run on the CPU). "
                    "More is faster while they fit in VRAM. “auto” (the default) takes as many "
                    "as fit in free VRAM by the memory estimate, none without a GPU; -1 "
                    "offloads every layer.",
    "n_ctx": "How many tokens the model can see at once: prompt, history and reply together. "
             "Memory for the KV cache grows with it; the minimum (0) uses the model's own.",
    "n_threads": "CPU threads for generation; “auto” lets llama.cpp use one per physical core.",
    "n_batch": "How many prompt tokens are processed per step. Larger reads prompts faster but "
               "needs more memory for the compute buffer.",
    "flash_attn": "A fused attention kernel: less memory for long contexts, often faster; "
                  "needed for a quantized V cache. “Auto” (llama.cpp's default) turns it on "
                  "where every layer's device has the kernel.",
    "use_mmap": "Map the file instead of reading it: loads at once and shares pages with the OS "
                "cache; parts may be read from disk on first use.",
    "use_mlock": "Pin the model in RAM so the OS never swaps it out (needs enough free RAM and "
                 "permission to lock memory).",
    "kv_cache_type": "Number format of the attention cache (keys and values of every past token). "
                     "f16 is exact; q8_0 halves the memory with a tiny loss; q4 saves more.",
}


class LoadPanel(QWidget):
    sig_reload_requested = Signal(object)  # LoadSettings
    sig_settings_changed = Signal(object)  # LoadSettings

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LoadPanel")
        self._updating = False
        self._seed = _DEFAULTS.seed  # not edited here, but kept across set_settings/settings
        self._path = ""
        self._report: GgufReport | None = None
        self._file_size = 0
        self._info: ModelInfo | None = None
        self._applied: LoadSettings | None = None
        self._hardware: HardwareInfo | None = None
        self._estimate: fit.FitEstimate | None = None
        self._shown = _DEFAULTS

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(6, 6, 6, 6)
        self.message = hint_label(warning=True)
        column.addWidget(self.message)
        self.saved_note = hint_label()
        self.saved_note.setObjectName("saved_note")
        column.addWidget(self.saved_note)
        column.addWidget(self._build_gpu_group())
        column.addWidget(self._build_context_group())
        self.draft = DraftPanel()  # speculative decoding: a draft model or n-gram lookup
        self.draft.sig_changed.connect(self._on_edited)
        column.addWidget(self.draft)
        column.addWidget(self._build_fit_group())
        self.reload_button = QPushButton("Reload to apply")
        self.reload_button.setToolTip("Load the model again with these settings")
        self.reload_button.clicked.connect(self._on_reload)
        column.addWidget(self.reload_button)
        column.addStretch(1)
        fill_with_scroll(self, body)
        self._show(_DEFAULTS)
        self._after_change()

    # --- building ---

    def _field(self, name: str, *, minimum: int, maximum: int, step: int = 1,
               slider_range: tuple[int, int] | None = None, special: str = "",
               slider: bool = True) -> NumberField:
        field = NumberField(minimum=minimum, maximum=maximum, default=getattr(_DEFAULTS, name),
                            step=step, slider_range=slider_range, special_text=special,
                            tooltip=TIPS[name], slider=slider)
        field.setObjectName(name)
        field.sig_value_changed.connect(self._on_edited)
        return field

    def _label(self, text: str, name: str) -> QLabel:
        label = QLabel(text)
        label.setToolTip(TIPS[name])
        return label

    def _check(self, text: str, name: str) -> QCheckBox:
        box = QCheckBox(text)
        box.setObjectName(name)
        box.setToolTip(TIPS[name])
        box.toggled.connect(self._on_edited)
        return box

    def _build_gpu_group(self) -> QGroupBox:
        box = QGroupBox("GPU")
        form = QFormLayout(box)
        form.setContentsMargins(6, 6, 6, 6)
        self.gpu_layers = self._field("n_gpu_layers", minimum=-2, maximum=999, special="auto",
                                      slider_range=(0, 48))
        self.gpu_layers.spin.setAccessibleName("GPU layers")
        form.addRow(self._label("GPU layers", "n_gpu_layers"), self.gpu_layers)
        self.gpu_status = hint_label("GPU offload: unknown until a model is loaded.")
        self.gpu_status.setObjectName("gpu_status")
        form.addRow(self.gpu_status)
        return box

    def _build_context_group(self) -> QGroupBox:
        box = QGroupBox("Context and CPU")
        form = QFormLayout(box)
        form.setContentsMargins(6, 6, 6, 6)
        self.n_ctx = self._field("n_ctx", minimum=0, maximum=1 << 20, step=256,
                                 slider_range=(0, 32768), special="model's")
        self.n_ctx.spin.setAccessibleName("Context length")
        self.n_threads = self._field("n_threads", minimum=0, maximum=max(256, _CORES * 4),
                                     slider_range=(0, _CORES), special="auto")
        self.n_threads.spin.setAccessibleName("Threads")
        self.n_batch = self._field("n_batch", minimum=1, maximum=1 << 16, step=64,
                                   slider_range=(32, 4096))
        self.n_batch.spin.setAccessibleName("Batch size")
        self.kv_type = QComboBox()
        self.kv_type.addItems(KV_CACHE_TYPES)
        self.kv_type.setToolTip(TIPS["kv_cache_type"])
        self.kv_type.setAccessibleName("KV cache type")
        self.kv_type.currentIndexChanged.connect(self._on_edited)
        self.flash_attn = QComboBox()
        self.flash_attn.setObjectName("flash_attn")
        for mode in FLASH_ATTN_MODES:
            self.flash_attn.addItem(_FLASH_WORDS[mode], mode)
        self.flash_attn.setToolTip(TIPS["flash_attn"])
        self.flash_attn.setAccessibleName("Flash attention")
        self.flash_attn.currentIndexChanged.connect(self._on_edited)
        self.use_mmap = self._check("Memory-map the file (mmap)", "use_mmap")
        self.use_mlock = self._check("Lock in RAM (mlock)", "use_mlock")
        form.addRow(self._label("Context length", "n_ctx"), self.n_ctx)
        form.addRow(self._label("Threads", "n_threads"), self.n_threads)
        form.addRow(self._label("Batch size", "n_batch"), self.n_batch)
        form.addRow(self._label("KV cache type", "kv_cache_type"), self.kv_type)
        form.addRow(self._label("Flash attention", "flash_attn"), self.flash_attn)
        form.addRow(self.use_mmap)
        form.addRow(self.use_mlock)
        self.context_note = hint_label()
        form.addRow(self.context_note)
        return box

    def _build_fit_group(self) -> QGroupBox:
        box = QGroupBox("Will it fit?")
        column = QVBoxLayout(box)
        column.setContentsMargins(6, 6, 6, 6)
        self.fit_bar = QProgressBar()
        self.fit_bar.setRange(0, 100)
        self.fit_bar.setTextVisible(True)
        self.fit_bar.setAccessibleName("Estimated memory use")
        self.fit_label = hint_label("Choose a model to see an estimate.")
        self.fit_label.setObjectName("fit_label")
        column.addWidget(self.fit_bar)
        column.addWidget(self.fit_label)
        return box

    # --- public API ---

    def settings(self) -> LoadSettings:
        return self.draft.apply_to(LoadSettings(
            n_gpu_layers=int(self.gpu_layers.value()),
            n_ctx=int(self.n_ctx.value()),
            n_threads=int(self.n_threads.value()),
            n_batch=int(self.n_batch.value()),
            flash_attn=str(self.flash_attn.currentData()),
            use_mmap=self.use_mmap.isChecked(),
            use_mlock=self.use_mlock.isChecked(),
            kv_cache_type=self.kv_type.currentText(),
            seed=self._seed,
        ))

    def set_settings(self, settings: LoadSettings) -> None:
        problem = ""
        try:
            settings.validated()
        except SettingsError as exc:
            problem = str(exc)
        self._show(settings)
        if problem or self.settings() != settings:
            self._set_message(
                f"Some values were out of range and were adjusted: {problem}".rstrip(": "))
        else:
            self._set_message("")
        self._after_change()

    def set_model_file(self, path: str, report: GgufReport | None) -> None:
        self._path, self._report = path, report
        if report is not None:
            self._file_size = report.file_size
        else:
            try:
                self._file_size = os.path.getsize(path) if path else 0
            except OSError:
                self._file_size = 0
        n_layer = report.block_count if report is not None else 0
        if n_layer:
            self.gpu_layers.slider.setRange(0, n_layer + 1)
        if report is not None and report.context_length:
            self.n_ctx.slider.setRange(0, report.context_length)
        self._after_change()

    def set_model_info(self, info: ModelInfo | None, applied: LoadSettings | None = None) -> None:
        self._info = info
        self._applied = applied if info is not None else None
        self.draft.set_model_info(info)
        self._after_change()

    def set_saved_note(self, text: str) -> None:
        self.saved_note.setText(text)
        self.saved_note.setVisible(bool(text))

    def set_hardware(self, hardware: HardwareInfo | None) -> None:
        self._hardware = hardware
        self._after_change()

    def refresh_estimate(self) -> None:
        self._update_estimate(self.settings())

    def estimate(self) -> fit.FitEstimate | None:
        return self._estimate

    # --- reacting ---

    def _show(self, s: LoadSettings) -> None:
        self._updating = True
        try:
            self.gpu_layers.set_value(s.n_gpu_layers)
            self.n_ctx.set_value(s.n_ctx)
            self.n_threads.set_value(s.n_threads)
            self.n_batch.set_value(s.n_batch)
            self.flash_attn.setCurrentIndex(max(self.flash_attn.findData(s.flash_attn), 0))
            self.use_mmap.setChecked(bool(s.use_mmap))
            self.use_mlock.setChecked(bool(s.use_mlock))
            index = self.kv_type.findText(s.kv_cache_type)
            self.kv_type.setCurrentIndex(max(index, 0))
            self._seed = s.seed if 0 <= s.seed <= 0xFFFFFFFF else _DEFAULTS.seed
            self.draft.set_from(s)
        finally:
            self._updating = False

    def _on_edited(self, *_args: object) -> None:
        if not self._updating:
            self._set_message("")
            self._after_change()

    def _after_change(self) -> None:
        current = self.settings()
        self._update_gpu_status(current)
        self._update_context_note(current)
        self._update_estimate(current)
        loaded = self._info is not None
        self.reload_button.setText("Reload to apply" if loaded else "Load with these settings")
        self.reload_button.setEnabled(
            bool(self._path) and (not loaded or current != self._applied))
        if current != self._shown:
            self._shown = current
            self.sig_settings_changed.emit(current)

    def _update_gpu_status(self, s: LoadSettings) -> None:
        lines = []
        gpus = self._hardware.gpus if self._hardware is not None else ()
        if gpus:
            lines.append("Found: " + "; ".join(
                f"{g.name} ({fit.format_bytes(g.free_bytes)} free)" for g in gpus))
        elif self._hardware is not None:
            lines.append("No GPU found on this machine.")
        info = self._info
        if info is None:
            lines.append("Whether this llama.cpp build can offload: unknown until a model is "
                         "loaded.")
        elif info.gpu_offload_supported:
            lines.append(f"This llama.cpp build offloads to {info.backend}: "
                         f"{info.n_layers_offloaded} of {info.n_layer} layers on the GPU.")
        else:
            lines.append("This llama.cpp build runs on the CPU only: GPU layers have no effect.")
        # On a CPU-only build the note only says again that nothing runs on a GPU.
        if info is not None and info.offload_note and info.gpu_offload_supported:
            lines.append(info.offload_note)
        self.gpu_status.setText("\n".join(lines))
        self.gpu_status.setVisible(True)

    def _update_context_note(self, s: LoadSettings) -> None:
        notes = []
        n_train = self._report.context_length if self._report is not None else 0
        if n_train and s.n_ctx > n_train:
            notes.append(f"Longer than the model was trained for ({n_train:,} tokens): "
                         "replies past that point degrade.")
        if s.quantized_kv_without_flash_attn:
            notes.append("A quantized KV cache needs flash attention for its V half: "
                         "set it to Auto or On.")
        info, applied = self._info, self._applied
        if info is not None and info.flash_attn is not None:
            state = "on" if info.flash_attn else "off"  # as loaded, not as the panel says now
            how = " (auto)" if applied is not None and applied.flash_attn == "auto" else ""
            notes.append(f"The loaded model runs with flash attention {state}{how}.")
        if s.use_mlock and not s.use_mmap:
            notes.append("mlock without mmap pins a private copy of the whole model.")
        self.context_note.setText(" ".join(notes))
        self.context_note.setVisible(bool(notes))

    def _update_estimate(self, s: LoadSettings) -> None:
        if not self._file_size:
            self._estimate = None
            self.fit_bar.setVisible(False)
            self.fit_label.setText("Choose a model to see an estimate.")
            return
        report = self._report
        shape = (fit.shape_from_metadata(report.metadata, architecture=report.architecture,
                                         n_vocab=report.vocab_size)
                 if report is not None else None)
        memory = fit.available_memory()
        offload_known_off = self._info is not None and not self._info.gpu_offload_supported
        vram = (self._hardware.free_vram_bytes
                if self._hardware is not None and not offload_known_off else 0)
        est = fit.estimate_fit(self._file_size, s, shape,
                               memory.available if memory else None,
                               n_ctx_train=report.context_length if report else 0,
                               vram_available=vram or None)
        self._estimate = est
        colour = _VERDICT_COLOURS[est.verdict]
        share = est.share
        self.fit_bar.setVisible(share is not None)
        if share is not None:
            self.fit_bar.setValue(min(100, round(share * 100)))
            self.fit_bar.setFormat(f"{share:.0%} of available RAM")
            self.fit_bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")
        self.fit_label.setText(_fit_html(est, os.path.basename(self._path), colour))

    def _set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _on_reload(self) -> None:
        self.sig_reload_requested.emit(self.settings())


def _fit_html(est: fit.FitEstimate, name: str, colour: str) -> str:
    """The estimate as a few short lines: verdict, the sum, and where it has to fit."""
    b = fit.format_bytes
    headline = {fit.FIT_FITS: "Fits", fit.FIT_TIGHT: "Tight", fit.FIT_WONT: "Won't fit",
                fit.FIT_UNKNOWN: "Unknown"}[est.verdict]
    kv = f"KV cache {b(est.kv_bytes)} ({est.n_ctx:,} tokens)"
    lines = [f"<b style='color:{colour}'>{headline}</b> — {_escape(name)}",
             f"Model {b(est.model_bytes)} + {kv} + compute {b(est.compute_bytes)}"
             f" = <b>{b(est.total_bytes)}</b>" + (" (rough: no layer sizes in the file)"
                                                   if est.rough else "")]
    if est.available_bytes is None:
        lines.append("Free memory is unknown on this system.")
    elif est.vram_bytes:
        lines.append(f"GPU {b(est.vram_bytes)} of {b(est.vram_available_bytes or 0)} free; "
                     f"RAM {b(est.ram_bytes)} of {b(est.available_bytes)} available")
    else:
        lines.append(f"RAM: {b(est.available_bytes)} available")
    if est.verdict == fit.FIT_WONT:
        lines.append("Lower the context length, use a smaller KV cache type or a smaller "
                     "quantization.")
    elif est.verdict == fit.FIT_TIGHT:
        lines.append("Other programs may be pushed into swap.")
    return "<br>".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
