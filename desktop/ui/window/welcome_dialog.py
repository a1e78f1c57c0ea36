"""WelcomeDialog: the first-run welcome. Says what Openlid shows, offers the ready model.

Shown once: closing it in any way (a choice, Skip, Esc, the window's close button) records
`AppSettings.welcome_shown`, and it never comes back. It only asks; the main window does the
work, through `sig_ready_model_requested` (load the shipped Gemma model) and
`sig_hub_browser_requested` (open the Hub browser). GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.settings import AppSettings
from desktop.ui.window.about_dialog import app_icon

# (what, why it matters): the four things Openlid puts on screen that other chat apps hide.
SHOWN = (
    ("Prompt", "the system prompt: the instructions the model reads before your first "
               "message; you can see and change them."),
    ("Template", "the exact text the model receives, special tokens and all, after your "
                 "conversation goes through the model's chat template."),
    ("Sampling", "how each next token is picked: temperature, top-k, top-p, min-p and the "
                 "rest, one stage after another."),
    ("Chart", "for every token, the candidates the model weighed and how likely each was; "
              "click any token in the reply to see its step."),
)


def should_show(settings: AppSettings) -> bool:
    return not settings.welcome_shown


def mark_shown(settings: AppSettings) -> None:
    settings.welcome_shown = True
    settings.sync()  # a crash later in this first session must not bring the welcome back


class WelcomeDialog(QDialog):
    sig_ready_model_requested = Signal()
    sig_hub_browser_requested = Signal()

    def __init__(self, settings: AppSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("WelcomeDialog")
        self.setWindowTitle("Welcome to Openlid")
        self.setWindowIcon(app_icon())
        self._settings = settings
        if settings is not None:
            self.finished.connect(self._record_shown)

        header = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(64, 64))
        header.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        intro = QLabel(
            "<h2>Welcome to Openlid</h2>"
            "<p>Openlid runs language models on this computer and lifts the lid on each "
            "reply. Beside the chat you will find:</p>"
        )
        intro.setWordWrap(True)
        header.addWidget(intro, 1)

        items = "".join(f"<li><b>{what}</b>: {why}</li>" for what, why in SHOWN)
        shown = QLabel(f"<ul>{items}</ul>")
        shown.setObjectName("welcomeShown")
        shown.setWordWrap(True)

        start = QLabel(
            "<p><b>Start now</b> with the ready model, Gemma 3 270M: small (253 MB), it comes "
            "with Openlid and runs on any CPU. Or find a larger model in the <b>Hub browser</b>, "
            "which downloads GGUF files from Hugging Face and says which ones fit this "
            "computer.</p>"
        )
        start.setWordWrap(True)

        self.ready_button = QPushButton("Use the ready model (Gemma 3 270M)")
        self.ready_button.setDefault(True)
        self.ready_button.clicked.connect(self._choose_ready_model)
        self.hub_button = QPushButton("Browse the Hub…")
        self.hub_button.clicked.connect(self._choose_hub)
        self.skip_button = QPushButton("Skip")
        self.skip_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.skip_button)
        buttons.addStretch(1)
        buttons.addWidget(self.hub_button)
        buttons.addWidget(self.ready_button)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(shown)
        layout.addWidget(start)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self.setMinimumWidth(560)

    def _choose_ready_model(self) -> None:
        self.accept()
        self.sig_ready_model_requested.emit()

    def _choose_hub(self) -> None:
        self.accept()
        self.sig_hub_browser_requested.emit()

    def _record_shown(self, _result: int) -> None:
        if self._settings is not None:
            mark_shown(self._settings)


def show_if_first_run(settings: AppSettings, parent: QWidget | None = None) -> WelcomeDialog | None:
    """Open the welcome (window-modal, not blocking) on the first run; None afterwards.

    Connect the returned dialog's signals right away; it deletes itself once closed.
    """
    if not should_show(settings):
        return None
    dialog = WelcomeDialog(settings, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
