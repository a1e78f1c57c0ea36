"""ServerPanel: start and stop the local OpenAI-compatible server, and see what it is asked.

GUI thread only. The panel holds the form (which model, bind address, port, optional API key,
the web pages and host names let in, the time limit per request), the Start/Stop buttons, a
status line with the base URL, ready-to-paste curl and Python snippets, and the request log
(`log_view`, a `RequestLogView`) under a splitter. The model is, by default, the one loaded in
the window, served through the window's engine (shared: requests take turns with the chat, no
second copy in memory); or any model of the library, which the server loads in an engine of
its own (the form's parts are in `server_form`). It never blocks: starting and stopping run on
`ServerService`'s control threads, and the panel follows the service's state signals. Whether an
address is loopback is decided here without DNS (a literal loopback IP or "localhost"; any other
name counts as reachable from the network and needs a key); the server checks again when it
starts.

API
- `ServerPanel(service: ServerService)` — wires itself to the service; offers the shared choice
  when the service can share the window's engine (`service.can_share`).
- `set_window_model(ModelInfo | None)` — what the window has loaded (the shared choice's model).
- `set_library_models([(path, name), …])` — the other models the server may load for itself.
- `set_model_path(path | None)` — pick that model for the server (its own engine); None: back
  to the shared choice.
- `set_load_settings(LoadSettings)`, `set_sampler_defaults(SamplerSettings | None)` — how the
  server's own engine loads the model, and the defaults for fields a request leaves out.
- `address() -> (host, port)`, `set_address(host, port)` — for the window to persist.
- `config() -> ServerConfig | None`, `start_problem() -> str` ("" when Start is allowed).
- `log_view` — can be moved into a dock of its own; emits `sig_steps_selected(list)` and
  `sig_step_selected(StepRecord)` for the probability chart.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.server.config import DEFAULT_MAX_TOKENS, DEFAULT_MAX_WAIT_S
from desktop.ui.panels.controls import hint_label
from desktop.ui.server.request_log import RequestLogView
from desktop.ui.server.server_form import AccessFields, ModelChoice
from desktop.ui.server.server_service import (
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    ServerConfig,
    ServerService,
)
from desktop.ui.server.snippets import (
    SnippetBox,
    connect_url,
    copied_timer,
    reachable_from_network,
)
from desktop.ui.wheel_guard import guard_wheel

DEFAULT_PORT = 8080
_HOSTS = (("127.0.0.1", "this computer only"), ("0.0.0.0", "every network interface"),
          ("::1", "this computer only, IPv6"))
_DOT = "<span style='color:{}'>●</span>&nbsp;"
_GREEN, _GREY, _AMBER, _RED = "#2e9d4f", "#8a8a8a", "#d08a00", "#d04040"


class ServerPanel(QWidget):
    def __init__(self, service: ServerService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ServerPanel")
        self.service = service
        self._load = LoadSettings()
        self._sampler: SamplerSettings | None = None
        self._failure = ""

        self.model_choice = ModelChoice(service.can_share, self)
        self.model_box, self.model_label = self.model_choice.box, self.model_choice.label
        self.host_box = QComboBox()
        self.host_box.setEditable(True)
        self.host_box.setAccessibleName("Bind address")
        for host, meaning in _HOSTS:
            self.host_box.addItem(host)
            self.host_box.setItemData(self.host_box.count() - 1, meaning,
                                      Qt.ItemDataRole.ToolTipRole)
        self.host_box.setToolTip("The address to listen on. 127.0.0.1: only programs on this "
                                 "computer can connect; 0.0.0.0: other machines can too.")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(0, 65535)
        self.port_spin.setValue(DEFAULT_PORT)
        self.port_spin.setSpecialValueText("any free")
        self.port_spin.setAccessibleName("Port")
        self.port_spin.setToolTip("The TCP port (0: any free port; the status line says which).")
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("none (optional on this computer)")
        self.key_edit.setAccessibleName("API key")
        self.key_edit.setToolTip("Clients must send 'Authorization: Bearer KEY'. Required when "
                                 "other machines can connect.")
        self.show_key = QToolButton()
        self.show_key.setText("Show")
        self.show_key.setCheckable(True)
        self.show_key.toggled.connect(self._on_show_key)
        self.new_key = QToolButton()
        self.new_key.setText("New key")
        self.new_key.setToolTip("Fill in a new random key")
        self.new_key.clicked.connect(self._on_new_key)
        key_row = QHBoxLayout()
        key_row.setContentsMargins(0, 0, 0, 0)
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.show_key)
        key_row.addWidget(self.new_key)
        address_row = QHBoxLayout()
        address_row.setContentsMargins(0, 0, 0, 0)
        address_row.addWidget(self.host_box, 1)
        address_row.addWidget(QLabel("Port"))
        address_row.addWidget(self.port_spin)
        self.access_hint = hint_label()
        self.access = AccessFields(self)
        self.origins_edit, self.hosts_edit = self.access.origins_edit, self.access.hosts_edit
        self.time_spin = self.access.time_spin

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.model_choice.add_rows(form)
        form.addRow("Address", address_row)
        form.addRow("", self.access_hint)
        form.addRow("API key", key_row)
        self.access.add_rows(form)

        self.start_button = QPushButton("Start server")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self._on_start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.service.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        self.problem_label = hint_label(warning=True)
        self.status_label = QLabel()
        self.status_label.setObjectName("serverStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_url_button = QToolButton()
        self.copy_url_button.setText("Copy URL")
        self.copy_url_button.setToolTip("Copy the base URL for an OpenAI client")
        self.copy_url_button.clicked.connect(self._copy_url)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status_label, 1)
        status_row.addWidget(self.copy_url_button, 0, Qt.AlignmentFlag.AlignTop)

        server_box = QGroupBox("Local server (OpenAI-compatible)")
        box_layout = QVBoxLayout(server_box)
        box_layout.addLayout(form)
        box_layout.addWidget(hint_label(
            "Shared, the server answers with the window's model through the window's engine: "
            "a request and a chat reply take turns, and the server follows the window when it "
            "loads another model (while none is loaded, requests get 503). Another model runs "
            "in a separate engine process (its own memory), with the Load panel's settings. "
            "Each request generates for at most the time limit and, unless it sets max_tokens, "
            f"{DEFAULT_MAX_TOKENS:,} tokens; one waits at most {DEFAULT_MAX_WAIT_S:g} s for "
            "its turn, and a client that disconnects frees the model at once. Web pages not "
            "listed cannot use the server (their requests get 403)."))

        self.snippets = SnippetBox()
        self.curl_view, self.python_view = self.snippets.curl_view, self.snippets.python_view

        controls = QWidget()
        controls_layout = QVBoxLayout(controls)
        controls_layout.addWidget(server_box)
        controls_layout.addWidget(self.snippets)
        controls_layout.addStretch(1)
        guard_wheel(controls)  # the wheel scrolls the panel, not a field under the pointer
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(controls)

        self.log_view = RequestLogView()
        requests_box = QGroupBox("Requests")
        requests_layout = QVBoxLayout(requests_box)
        requests_layout.addWidget(self.log_view)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(requests_box)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 2)
        # Start/Stop and the server's state stay in view above the scrolling settings (at
        # 1280x720 the settings' area is ~220 px tall: Start was below its fold).
        bar = QVBoxLayout()
        bar.setContentsMargins(6, 6, 6, 0)
        bar.addLayout(buttons)
        bar.addWidget(self.problem_label)
        bar.addLayout(status_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        self._controls = controls
        self._sized = False

        self._copied = copied_timer(self, lambda: self.copy_url_button.setText("Copy URL"))

        self.model_choice.sig_changed.connect(self._refresh)
        self.host_box.currentTextChanged.connect(self._refresh)
        self.port_spin.valueChanged.connect(self._refresh)
        self.key_edit.textChanged.connect(self._refresh)
        self.access.sig_changed.connect(self._refresh)
        service.sig_state_changed.connect(self._refresh)
        service.sig_server_started.connect(self._on_started)
        service.sig_server_failed.connect(self._on_failed)
        service.sig_request_logged.connect(self.log_view.add_entry)
        service.sig_request_step.connect(self.log_view.add_step)
        self._refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            self._arrange(force=True)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._sized:
            self._arrange()

    def _arrange(self, force: bool = False) -> None:
        """Side by side in a wide dock (bottom area), stacked in a tall one (side area). The
        split is set when the orientation changes; after that it is the user's."""
        wide = self.width() >= 900 and self.width() > self.height()
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if not force and orientation == self.splitter.orientation():
            return
        self.splitter.setOrientation(orientation)
        hint = self._controls.sizeHint()
        if wide:
            total = max(1, self.width())
            first = min(max(hint.width(), 420), total * 2 // 5)
        else:
            total = max(1, self.height())
            first = min(hint.height(), total // 2)
        self.splitter.setSizes([first, total - first])

    # --- inputs from the main window ---

    def set_window_model(self, info: ModelInfo | None) -> None:
        """What the window has loaded now (the shared choice serves it)."""
        self.model_choice.window_model = info
        if info is not None and self.service.shared and self.service.running:
            self._show_special_tokens(info)
        self._refresh()

    def set_library_models(self, models: Iterable[tuple[str, str]]) -> None:
        """The models the server may load for itself, as (path, name)."""
        self.model_choice.set_library_models(models)

    def set_model_path(self, path: str | Path | None) -> None:
        """Serve this model in the server's own engine; None: the window's model (shared)."""
        self.model_choice.set_model_path(path)
        self._refresh()

    def set_load_settings(self, settings: LoadSettings) -> None:
        self._load = settings

    def set_sampler_defaults(self, settings: SamplerSettings | None) -> None:
        self._sampler = settings

    def address(self) -> tuple[str, int]:
        return self.host_box.currentText().strip(), self.port_spin.value()

    def set_address(self, host: str, port: int) -> None:
        self.host_box.setCurrentText(host)
        self.port_spin.setValue(port)

    # --- what Start would do ---

    def start_problem(self) -> str:
        """Why Start is disabled, in words for the user ("" when it is allowed)."""
        host = self.address()[0]
        problem = self.model_choice.problem()
        if problem:
            return problem
        if not host:
            return "Enter the address to listen on (127.0.0.1 for this computer only)."
        if reachable_from_network(host) and not self.key_edit.text().strip():
            return (f"Other machines can connect to {host}, so an API key is required: enter "
                    "one or press “New key” — or listen on 127.0.0.1.")
        return self.access.problem()

    def config(self) -> ServerConfig | None:
        if self.start_problem():
            return None
        host, port = self.address()
        return ServerConfig(
            self.model_choice.model_path(), host, port, self.key_edit.text().strip() or None,
            self._load, self._sampler, allowed_origins=self.access.origins(),
            allowed_hosts=self.access.hosts(),
            max_request_seconds=self.access.max_request_seconds())

    # --- state ---

    def _on_start(self) -> None:
        config = self.config()
        if config is None:
            return
        self._failure = ""
        self.service.start(config)

    def _on_started(self, _base_url: str) -> None:
        info = self.service.model_info
        if info is not None:
            self._show_special_tokens(info)
        self._refresh()

    def _show_special_tokens(self, info: ModelInfo) -> None:
        tokens = (info.bos, info.eos, info.eot)
        self.log_view.set_special_tokens(t.text for t in tokens if t is not None)

    def _on_failed(self, message: str) -> None:
        self._failure = message
        self._refresh()

    def _refresh(self) -> None:
        state = self.service.state
        idle = state == STOPPED
        problem = self.start_problem() if idle else ""
        self.start_button.setEnabled(idle and not problem)
        self.start_button.setToolTip(problem or (
            "Serve the window's model through the window's engine, and listen"
            if self.model_choice.shared else "Load the model in its own engine and listen"))
        self.stop_button.setEnabled(state in (STARTING, RUNNING))
        self.stop_button.setText("Cancel" if state == STARTING else "Stop")
        for widget in (self.model_box, self.host_box, self.port_spin, self.key_edit,
                       self.new_key, *self.access.widgets()):
            widget.setEnabled(idle)  # a running server keeps the settings it started with
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        config = self.service.config
        self.model_choice.show_meaning(config.model_path if config and not idle else False)
        host = self.address()[0]
        self.access_hint.setText(
            "Other machines on your network can connect to this address." if host
            and reachable_from_network(host) else "Only programs on this computer can connect.")
        self.access_hint.setVisible(True)
        self.status_label.setText(self._status_text(state))
        self.copy_url_button.setEnabled(state == RUNNING)
        self._refresh_snippets(state)

    def _status_text(self, state: str) -> str:
        if state == RUNNING:
            config = self.service.config
            bind = ""
            if config is not None and reachable_from_network(config.host):
                bind = f" (listening on {config.host}, reachable from other machines)"
            model = self.service.model_id
            if self.service.shared:
                model = (f"<b>{model}</b> (the window's model)" if model
                         else "the window's model (none is loaded now: requests get 503)")
            else:
                model = f"<b>{model}</b>"
            return (_DOT.format(_GREEN) + f"Serving {model}{bind} at"
                    f"<br><b>{self.service.base_url}</b>")
        if state == STARTING:
            if self.service.shared:
                return _DOT.format(_AMBER) + "Starting…"
            return _DOT.format(_AMBER) + "Starting: loading the model in the server's engine…"
        if state == STOPPING:
            return _DOT.format(_AMBER) + "Stopping…"
        if self._failure:
            text = self._failure.replace("&", "&amp;").replace("<", "&lt;")
            return _DOT.format(_RED) + f"Could not start: {text}"
        return _DOT.format(_GREY) + "Stopped."

    def _refresh_snippets(self, state: str) -> None:
        if state == RUNNING:
            config = self.service.config
            self.snippets.show_for(self.service.base_url, self.service.model_id,
                                   bool(config and config.api_key), running=True)
            return
        host, port = self.address()
        self.snippets.show_for(connect_url(host, port or "PORT"), self.model_choice.snippet_name(),
                               bool(self.key_edit.text().strip()), running=False)

    # --- small actions ---

    def _on_show_key(self, shown: bool) -> None:
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown
                                  else QLineEdit.EchoMode.Password)
        self.show_key.setText("Hide" if shown else "Show")

    def _on_new_key(self) -> None:
        self.key_edit.setText("sk-openlid-" + secrets.token_urlsafe(24))

    def _copy_url(self) -> None:
        if self.service.base_url:
            QGuiApplication.clipboard().setText(self.service.base_url)
            self.copy_url_button.setText("Copied")
            self._copied.start()


__all__ = ["ServerPanel"]
