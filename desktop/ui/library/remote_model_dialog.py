"""RemoteModelDialog: add or edit a remote model entry (an OpenAI-compatible endpoint). GUI thread.

The person gives the endpoint's URL, the model's name there (typed, or picked from the list that
"Fetch models" reads from GET /v1/models), an API key (hidden as typed), a display name and
whether to send llama.cpp's own sampler fields. "Test connection" checks that the endpoint answers,
accepts the key and serves that model. Both network calls run on the dialog's JobService pool
(short timeouts), never on the GUI thread; their answers come back as queued callbacks.

`RemoteModelDialog.ask(parent)` is the one call the model library needs: it stores the entry
(desktop.remote.entries) and returns it, or None when the person cancelled.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.remote import entries as remote_models
from desktop.remote.client import RemoteEngine, RemoteError, RemoteModel
from desktop.remote.entries import RemoteEntry, RemoteModelError
from desktop.ui.job_service import JobService

NETWORK_TIMEOUT_S = 8.0  # a dialog must not hang on a host that swallows packets
DEFAULT_URL = "http://127.0.0.1:8080/v1"


def list_models(model: RemoteModel) -> tuple[str, ...]:
    """The model names the endpoint serves (pool thread). Raises RemoteError."""
    return tuple(RemoteEngine(model, timeout=NETWORK_TIMEOUT_S).list_models())


def check_connection(model: RemoteModel) -> str:
    """What "Test connection" says when all is well (pool thread). Raises RemoteError."""
    names = list_models(model)
    if model.model not in names:
        raise RemoteError(remote_models.not_served(model, list(names)), kind="config")
    return f"Connected: {remote_models.public_url(model.base_url)} serves '{model.model}'."


class RemoteModelDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, entry: RemoteEntry | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit remote model" if entry else "Add remote model")
        self.setMinimumWidth(520)
        self.entry = entry  # the one being edited; the stored result after accept
        self.jobs = JobService("openlid-remote-check", max_threads=2, parent=self)
        self._build()
        model = entry.model if entry else None
        self.url_edit.setText(model.base_url if model else DEFAULT_URL)
        self.model_combo.setEditText(model.model if model else "")
        self.key_edit.setText(model.api_key if model else "")
        self.name_edit.setText(model.name if model else "")
        self.extras_box.setChecked(model.llama_extras if model else True)

    def _build(self) -> None:
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText(DEFAULT_URL)
        self.url_edit.setToolTip("The API's base URL, usually ending in /v1 (llama-server, vLLM, "
                                 "Ollama, LM Studio, openlid serve)")
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        edit = self.model_combo.lineEdit()
        if edit is not None:  # always, once editable
            edit.setPlaceholderText("the model's name at the endpoint")
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(24)
        self.fetch_button = QPushButton("Fetch models")
        self.fetch_button.setToolTip("Ask the endpoint which models it serves (GET /v1/models)")
        self.fetch_button.clicked.connect(self.fetch_models)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.fetch_button)
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("none")
        self.key_edit.setToolTip("Sent as 'Authorization: Bearer …'; stored in a file only you "
                                 "can read, never logged")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("as the model library shows it (default: model name)")
        self.extras_box = QCheckBox("Send llama.cpp sampler fields (top-k, min-p, typical-p, "
                                    "repeat penalty, mirostat)")
        self.extras_box.setToolTip("llama-server, llama-cpp-python and vLLM understand them; turn "
                                   "off for endpoints that refuse unknown fields")
        form = QFormLayout()
        form.addRow("URL:", self.url_edit)
        form.addRow("Model:", model_row)
        form.addRow("API key:", self.key_edit)
        form.addRow("Display name:", self.name_edit)
        form.addRow("", self.extras_box)

        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.status, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(self.buttons)

    # --- the entry ---

    def remote_model(self) -> RemoteModel:
        """The fields as a RemoteModel (not validated)."""
        return RemoteModel(
            base_url=self.url_edit.text().strip().rstrip("/"),
            model=self.model_combo.currentText().strip(),
            api_key=self.key_edit.text().strip(),
            name=self.name_edit.text().strip(),
            llama_extras=self.extras_box.isChecked(),
        )

    def validated_model(self) -> RemoteModel | None:
        """The fields, checked; None (and the reason shown) when something is wrong."""
        try:
            return self.remote_model().validated()
        except RemoteError as exc:
            self.show_status(_sentence(str(exc)), error=True)
            return None

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setProperty("error", error)  # tests read it
        # Red words for a problem, in light and dark themes alike; the palette's text otherwise.
        self.status.setStyleSheet("color: rgb(200, 40, 40);" if error else "")

    # --- network checks (pool thread → queued callback) ---

    def fetch_models(self) -> None:
        try:
            model = RemoteModel(self.remote_model().base_url, "-",
                                self.key_edit.text().strip()).validated()
        except RemoteError as exc:
            self.show_status(_sentence(str(exc)), error=True)
            return
        self.fetch_button.setEnabled(False)
        self.show_status("Asking the endpoint for its models…")
        self.jobs.submit(list_models, model, on_done=self._on_models_fetched,
                         on_error=self._on_check_failed)

    def _on_models_fetched(self, names: tuple[str, ...]) -> None:
        self.fetch_button.setEnabled(True)
        typed = self.model_combo.currentText()
        self.model_combo.clear()
        self.model_combo.addItems(list(names))
        self.model_combo.setEditText(typed if typed in names or not names else names[0])
        self.show_status(f"The endpoint serves {len(names)} model{'s' if len(names) != 1 else ''}."
                         if names else "The endpoint answered but lists no models.",
                         error=not names)

    def test_connection(self) -> None:
        model = self.validated_model()
        if model is None:
            return
        self.test_button.setEnabled(False)
        self.show_status("Testing…")
        self.jobs.submit(check_connection, model, on_done=self._on_tested,
                         on_error=self._on_check_failed)

    def _on_tested(self, message: str) -> None:
        self.test_button.setEnabled(True)
        self.show_status(message)

    def _on_check_failed(self, error: Exception) -> None:
        self.fetch_button.setEnabled(True)
        self.test_button.setEnabled(True)
        model = self.remote_model()
        text = remote_models.redact(str(error), model)
        if isinstance(error, RemoteError) and error.status in (401, 403):
            text = ("The endpoint refused the API key." if model.api_key else
                    "The endpoint needs an API key.") + f" ({text})"
        self.show_status(_sentence(text), error=True)

    # --- closing ---

    def accept(self) -> None:
        model = self.validated_model()
        if model is None:
            return
        try:
            if self.entry is None:
                self.entry = remote_models.add(model)
            else:
                self.entry = remote_models.update(self.entry.id, model)
        except (RemoteModelError, OSError) as exc:
            self.show_status(f"Could not save the entry: {exc}", error=True)
            return
        super().accept()

    def done(self, result: int) -> None:
        # Drop answers still on their way; a running call ends within NETWORK_TIMEOUT_S.
        self.jobs.cancel()
        self.jobs.wait(int(NETWORK_TIMEOUT_S * 1000) + 1000)
        super().done(result)

    @staticmethod
    def ask(parent: QWidget | None = None, entry: RemoteEntry | None = None) -> RemoteEntry | None:
        """Show the dialog (modal); the stored entry, or None when cancelled."""
        dialog = RemoteModelDialog(parent, entry)
        try:
            if dialog.exec() == QDialog.DialogCode.Accepted:
                return dialog.entry
            return None
        finally:
            dialog.deleteLater()


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text
