"""Words and code the Server panel shows: whether an address is reachable from the network,
the URL a local client uses, ready-to-paste curl and Python (`openai`) snippets, and
`SnippetBox`, the tabbed box that shows them with a Copy button.

GUI thread only. The text functions are pure (no DNS, no I/O), so they are tested without Qt.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QGroupBox, QPlainTextEdit, QTabWidget, QToolButton, QVBoxLayout

from desktop.ui.panels.controls import hint_label
from desktop.ui.panels.prompt_view import monospace

KEY_ENV = "OPENLID_API_KEY"  # the variable the snippets read the key from (as `openlid serve`)


def reachable_from_network(host: str) -> bool:
    """True unless `host` is surely loopback; no DNS (a name may resolve to anything)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return False
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True


def connect_url(host: str, port: int | str) -> str:
    """The base URL a client on this machine uses for a server bound to `host`."""
    name = host.strip().strip("[]")
    name = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(name, name)
    return f"http://{f'[{name}]' if ':' in name else name}:{port}/v1"


def curl_snippet(base_url: str, model_id: str, with_key: bool) -> str:
    fields = (("model", model_id),
              ("messages", [{"role": "user", "content": "Say hello in French."}]),
              ("max_tokens", 32), ("logprobs", True), ("top_logprobs", 3))
    body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                      for k, v in fields)
    body = body.replace("'", "'\\''")  # inside single quotes for the shell
    auth = f'  -H "Authorization: Bearer ${KEY_ENV}" \\\n' if with_key else ""
    return (f"curl {base_url}/chat/completions \\\n"
            '  -H "Content-Type: application/json" \\\n'
            f"{auth}"
            f"  -d '{{\n{body}\n  }}'\n")


def python_snippet(base_url: str, model_id: str, with_key: bool) -> str:
    key = f'os.environ["{KEY_ENV}"]' if with_key else '"not-needed"'
    return ("import math\n" + ("import os\n" if with_key else "") + "\n"
            "from openai import OpenAI\n\n"
            f"client = OpenAI(base_url={json.dumps(base_url)}, api_key={key})\n"
            "reply = client.chat.completions.create(\n"
            f"    model={json.dumps(model_id, ensure_ascii=False)},\n"
            '    messages=[{"role": "user", "content": "Say hello in French."}],\n'
            "    max_tokens=32,\n"
            "    logprobs=True,\n"
            "    top_logprobs=3,\n"
            ")\n"
            "print(reply.choices[0].message.content)\n"
            "for token in reply.choices[0].logprobs.content:\n"
            '    print(repr(token.token), f"{math.exp(token.logprob):.1%}")\n')


def copied_timer(parent: QObject, reset: Callable[[], None]) -> QTimer:
    """A single-shot timer that puts a "Copied" button label back after a moment."""
    timer = QTimer(parent)
    timer.setObjectName("server-copied-label")
    timer.setSingleShot(True)
    timer.setInterval(1500)
    timer.timeout.connect(reset)
    return timer


class SnippetBox(QGroupBox):
    """curl and Python snippets for the server's address, in tabs, with a Copy button."""

    def __init__(self) -> None:
        super().__init__("Use it from your code")
        self.curl_view = _snippet_view("curl snippet")
        self.python_view = _snippet_view("Python snippet")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.curl_view, "curl")
        self.tabs.addTab(self.python_view, "Python (openai)")
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy the snippet shown")
        self.copy_button.clicked.connect(self._copy)
        self.tabs.setCornerWidget(self.copy_button)
        self.hint = hint_label()
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.hint)
        self._copied = copied_timer(self, lambda: self.copy_button.setText("Copy"))

    def show_for(self, base_url: str, model_id: str, with_key: bool, running: bool) -> None:
        self.curl_view.setPlainText(curl_snippet(base_url, model_id, with_key))
        self.python_view.setPlainText(python_snippet(base_url, model_id, with_key))
        notes = [] if running else ["Start the server to use these."]
        if with_key:
            notes.append(f"They read the key from ${KEY_ENV}: export it first.")
        self.hint.setText(" ".join(notes))
        self.hint.setVisible(bool(notes))

    def _copy(self) -> None:
        view = self.tabs.currentWidget()
        if isinstance(view, QPlainTextEdit):
            QGuiApplication.clipboard().setText(view.toPlainText())
            self.copy_button.setText("Copied")
            self._copied.start()


def _snippet_view(name: str) -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setReadOnly(True)
    view.setFont(monospace())
    view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    view.setAccessibleName(name)
    view.setMinimumHeight(view.fontMetrics().lineSpacing() * 8)
    return view
