"""AccountBar: the Hugging Face account on the Hub page — who is logged in, a token field to log
in, Log out. GUI thread only.

It only asks and shows: `sig_login_requested(token)` and `sig_logout_requested()` go out (HubWindow
hands them to HubService, which calls huggingface_hub's own login and logout off the GUI thread);
`set_account(Account)`, `show_error(message)` and `set_checking()` come in. The token field is
cleared as soon as the token is sent: the bar keeps no copy of it.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from desktop.core.hub.login import Account

__all__ = ["GATED_HINT", "AccountBar"]

TOKENS_URL = "https://huggingface.co/settings/tokens"
GATED_HINT = "Gated: accept the terms on huggingface.co, then log in here"


class AccountBar(QFrame):
    sig_login_requested = Signal(str)  # a token typed by the user
    sig_logout_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hubAccount")
        self.account = Account()
        self.who = QLabel("Hugging Face: checking the login…")
        self.who.setObjectName("accountWho")
        self.who.setOpenExternalLinks(True)
        self.token_edit = QLineEdit()
        self.token_edit.setObjectName("accountToken")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("Paste a Hugging Face token (hf_…) to log in")
        self.token_edit.setToolTip(
            "A token with read access, from huggingface.co/settings/tokens. huggingface_hub "
            "stores it, as `hf auth login` does; gated and private models then download."
        )
        self.token_edit.setAccessibleName("Hugging Face token")
        self.token_edit.setMinimumWidth(220)
        self.token_edit.returnPressed.connect(self._login)
        self.login_button = QPushButton("Log in")
        self.login_button.clicked.connect(self._login)
        self.logout_button = QPushButton("Log out")
        self.logout_button.setToolTip("Forget the token stored on this computer")
        self.logout_button.clicked.connect(self._logout)
        self.message = QLabel("")
        self.message.setObjectName("accountMessage")
        self.message.setWordWrap(True)
        self.message.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.who)
        row.addWidget(self.message, 1)
        row.addStretch(0)
        row.addWidget(self.token_edit)
        row.addWidget(self.login_button)
        row.addWidget(self.logout_button)
        self.set_account(Account(), checked=False)

    def set_checking(self) -> None:
        self.who.setText("Hugging Face: checking the login…")
        self.login_button.setEnabled(False)
        self.logout_button.setEnabled(False)

    def set_account(self, account: Account, *, checked: bool = True) -> None:
        """Show who is logged in (and offer the other action)."""
        self.account = account
        self._show_who(checked)
        if account.problem:
            self.show_error(account.problem)
        elif checked:
            self.message.hide()

    def _show_who(self, checked: bool) -> None:
        account = self.account
        logged_in = account.logged_in
        if logged_in:
            text = f"Hugging Face: logged in as <b>{_escape(account.name)}</b>"
            if account.from_environment:
                text += " (from HF_TOKEN)"
        elif checked:
            text = (
                f'Hugging Face: not logged in (<a href="{TOKENS_URL}">get a token</a>, '
                "needed for gated models)"
            )
        else:
            text = "Hugging Face: checking the login…"
        self.who.setText(text)
        self.token_edit.setVisible(not logged_in)
        self.login_button.setVisible(not logged_in)
        self.login_button.setEnabled(True)
        self.logout_button.setVisible(logged_in and not account.from_environment)
        self.logout_button.setEnabled(True)

    def show_error(self, message: str) -> None:
        """A refused token, a failed check or logout: said beside the field, which stays."""
        self._show_who(True)
        self.message.setText(message)
        self.message.show()

    def focus_token(self) -> None:
        if self.token_edit.isVisible():
            self.token_edit.setFocus()

    def _login(self) -> None:
        token = self.token_edit.text().strip()
        if not token:
            self.show_error(
                "Paste a token first: create one with read access at "
                "huggingface.co/settings/tokens."
            )
            return
        self.token_edit.clear()
        self.message.hide()
        self.set_checking()
        self.sig_login_requested.emit(token)

    def _logout(self) -> None:
        self.message.hide()
        self.set_checking()
        self.sig_logout_requested.emit()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
