"""Issue 21: the Hub as a page of the main window (Ctrl+3, the page bar, Esc back), the Hugging
Face account on it (who, log in, log out through huggingface_hub's token storage), gated badges
that say what to do, right-hand tabs readable at 1280 × 720, and chat shortcuts that bring the
chat back from the Hub. The local Hub from tests/hub; the fake engine (no process)."""

# ruff: noqa: F811 - the Hub fixtures are imported by name and used as arguments

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import QDockWidget, QTabBar

from desktop.ui.hub import HubWindow
from desktop.ui.hub.account_bar import GATED_HINT
from desktop.ui.hub.browser import ACCESS, COLUMNS, GATED_COLOUR
from desktop.ui.settings import AppSettings
from desktop.ui.window.main_window import MainWindow
from tests.hub.server import HubServer
from tests.ui.conftest import FakeEngine
from tests.ui.hub_helpers import (  # noqa: F401 - fixtures
    GRANTED,
    _hub_env,
    fake_repos,
    hub,
    make_window,
    open_repo,
    token_store,
    whoami,
    window,
)

pytestmark = [
    pytest.mark.usefixtures("no_dangling"),
    pytest.mark.qt_log_ignore("This plugin does not support"),
]


@pytest.fixture
def main(qtbot: Any, home: Path, tmp_path: Path, hub: HubServer) -> Iterator[MainWindow]:
    models = tmp_path / "models"
    models.mkdir()
    w = MainWindow(
        AppSettings(),
        engine=FakeEngine(interval_ms=2),
        models_dir=models,
        database=tmp_path / "db.sqlite3",
    )
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    yield w
    w.close()


def action(w: MainWindow, keys: str) -> QAction:
    """The window's action for a key sequence (offscreen windows are never active, so tests
    trigger the action the keys are bound to)."""
    [found] = [a for a in w.findChildren(QAction) if a.shortcut() == QKeySequence(keys)]
    return found


def shown_docks(w: MainWindow) -> set[str]:
    return {d.objectName() for d in w.findChildren(QDockWidget) if d.isVisible()}


def test_ctrl_3_opens_the_hub_page_in_the_main_window_and_esc_comes_back(
    qtbot: Any, main: MainWindow
) -> None:
    w = main
    assert w.services is not None
    hub_page = w.services.hub
    docks = shown_docks(w)
    assert {"ModelsDock", "ConversationsDock", "ChartDock"} <= docks
    hub_action = action(w, "Ctrl+3")
    assert hub_action.text() == "&Hub"
    with qtbot.waitSignal(hub_page.hub.sig_search_finished, timeout=10_000):
        hub_action.trigger()  # first shown: the popular GGUF models are listed
    assert w.pages.on_hub
    assert hub_page.window() is w  # a page of the main window, not a window of its own
    assert hub_page.isVisible()
    assert w.pages.hub_action.isChecked()
    assert shown_docks(w) == set()  # the Hub has the whole width
    assert not w.tabs.isVisible()

    open_repo(qtbot, hub_page, "openlid-test/tiny-gguf")
    assert hub_page.model_page.stack.currentIndex() == 1
    action(w, "Esc").trigger()  # first Esc: the repo's page is put away, the page stays
    assert hub_page.model_page.repo_id == ""
    assert hub_page.model_page.stack.currentIndex() == 0
    assert w.pages.on_hub
    action(w, "Esc").trigger()  # second: back to the chat, docks as they were
    assert not w.pages.on_hub
    assert w.tabs.isVisible()
    assert shown_docks(w) == docks
    assert w.pages.chat_action.isChecked()

    w.pages.hub_action.trigger()  # the page bar on the left does the same
    assert w.pages.on_hub
    action(w, "Ctrl+2").trigger()
    assert not w.pages.on_hub
    assert w.tabs.currentWidget() is w.completion_view


def test_chat_shortcuts_bring_the_chat_back_and_the_layout_is_saved_with_its_docks(
    qtbot: Any, main: MainWindow
) -> None:
    w = main
    assert w.services is not None
    docks = shown_docks(w)
    for keys, check in (
        ("Ctrl+N", lambda: w.tabs.currentWidget() is w.chat_view),
        ("Ctrl+L", lambda: w.tabs.currentWidget() is w.chat_view),
        ("Ctrl+,", lambda: w.sampling_dock.isVisible()),
        ("Ctrl+6", lambda: w.mcp_dock is not None and w.mcp_dock.isVisible()),
    ):
        w.show_hub_browser()
        assert w.pages.on_hub
        action(w, keys).trigger()
        assert not w.pages.on_hub, keys
        assert check(), keys
    action(w, "Ctrl+K").trigger()  # Search the Hub: the page, its search field ready
    assert w.pages.on_hub
    qtbot.waitUntil(
        lambda: w.services is not None and w.services.hub.browser.search_edit.hasFocus(),
        timeout=2000,
    )
    # Closing on the Hub page saves the chat page's layout, not the docks hidden.
    w.shutdown()
    restored = MainWindow(
        AppSettings(), engine=FakeEngine(), models_dir=w.library.models_dir, with_services=False
    )
    qtbot.addWidget(restored)
    restored.show()
    assert {"ModelsDock", "ConversationsDock"} <= shown_docks(restored)
    assert shown_docks(restored) <= docks
    restored.close()


def test_right_hand_tabs_are_readable_at_1280_by_720(qtbot: Any, main: MainWindow) -> None:
    w = main
    qtbot.wait(50)
    # The whole window, every dock shown, needs no more than a 1280-pixel screen (the attach
    # bar's "Search by" list once asked for its longest entry's width: 1,384 px in all).
    assert w.minimumSizeHint().width() <= 1280
    assert w.width() == 1280
    bars = [
        b
        for b in w.findChildren(QTabBar)
        if b.isVisible() and "Sampling" in [b.tabText(i) for i in range(b.count())]
    ]
    [bar] = bars
    titles = [bar.tabText(i) for i in range(bar.count())]
    assert len(titles) == 7, titles
    for i, title in enumerate(titles):
        rect = bar.tabRect(i)
        assert rect.width() >= bar.tabSizeHint(i).width(), f"{title!r} is cut"
        assert bar.rect().contains(rect), f"{title!r} is off the bar"


def test_back_from_the_hub_the_window_keeps_its_width(qtbot: Any, main: MainWindow) -> None:
    """The docks came back laid out around the hidden Hub's least width: the window grew from
    1,232 to 1,774 pixels, past a 1280-pixel screen (seen under Xvfb at 1280x720)."""
    w = main
    qtbot.wait(50)
    width = w.width()
    docks = shown_docks(w)
    for _ in range(2):
        w.show_hub_browser()
        qtbot.wait(20)
        w.pages.show_chat()
        qtbot.wait(50)
        assert not w.pages.on_hub
        assert shown_docks(w) == docks
        assert w.width() == width <= 1280


def test_the_account_bar_logs_in_says_who_and_logs_out(
    qtbot: Any, window: HubWindow, whoami: str, token_store: Path
) -> None:
    bar = window.account_bar
    qtbot.waitUntil(lambda: "not logged in" in bar.who.text(), timeout=5000)
    assert bar.token_edit.isVisibleTo(bar)
    assert not bar.logout_button.isVisibleTo(bar)

    bar.login_button.click()  # nothing typed: said, nothing sent
    assert "Paste a token first" in bar.message.text()
    with qtbot.waitSignal(window.hub.sig_hub_failed, timeout=10_000) as failed:
        bar.token_edit.setText("hf_not_a_real_token")
        qtbot.keyClick(bar.token_edit, Qt.Key.Key_Return)
    assert failed.args[0] == "login"
    assert "did not accept this token" in bar.message.text()
    assert bar.message.isVisibleTo(bar)
    assert bar.token_edit.text() == ""  # the bar keeps no copy of a token
    assert bar.token_edit.isVisibleTo(bar)
    assert bar.login_button.isEnabled()

    with qtbot.waitSignal(window.hub.sig_account_changed, timeout=10_000):
        bar.token_edit.setText(GRANTED)
        bar.login_button.click()
    assert "logged in as <b>openlid-tester</b>" in bar.who.text()
    assert bar.logout_button.isVisibleTo(bar)
    assert not bar.token_edit.isVisibleTo(bar)
    assert not bar.message.isVisibleTo(bar)
    assert (token_store / "token").read_text().strip() == GRANTED  # huggingface_hub's storage

    with qtbot.waitSignal(window.hub.sig_account_changed, timeout=10_000):
        bar.logout_button.click()
    assert "not logged in" in bar.who.text()
    assert not (token_store / "token").exists()
    assert bar.token_edit.isVisibleTo(bar)


def test_a_stored_token_is_shown_as_its_user_when_the_hub_opens(
    qtbot: Any, make_window: Any, whoami: str, token_store: Path
) -> None:
    (token_store / "token").write_text(GRANTED)
    w = make_window()
    w.show()
    qtbot.waitUntil(lambda: "openlid-tester" in w.account_bar.who.text(), timeout=10_000)


def test_gated_results_carry_a_badge_that_says_what_to_do(
    qtbot: Any, window: HubWindow, whoami: str
) -> None:
    with qtbot.waitSignal(window.hub.sig_search_finished, timeout=10_000):
        window.search("tiny")
    model = window.browser.results
    [row] = [r for r in range(model.rowCount()) if model.index(r, 0).data() == "tiny-gated"]
    cell = model.index(row, ACCESS)
    assert COLUMNS[ACCESS] == "Licence · access"
    assert cell.data() == "Gated (approval) · llama3"
    assert cell.data(Qt.ItemDataRole.ForegroundRole) == QColor(GATED_COLOUR)
    tip = cell.data(Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith(GATED_HINT)
    assert "huggingface.co/openlid-gated/tiny-gated" in tip
    status = window.browser.status.text()
    assert status.endswith("1 gated: accept the terms on huggingface.co, then log in above")
    open_cell = model.index(next(r for r in range(model.rowCount()) if r != row), ACCESS)
    assert open_cell.data(Qt.ItemDataRole.ForegroundRole) is None

    with qtbot.waitSignal(window.hub.sig_account_changed, timeout=10_000):
        window.account_bar.token_edit.setText(GRANTED)
        window.account_bar.login_button.click()
    assert window.browser.status.text().endswith(
        "1 gated: accept the terms on huggingface.co to download"
    )
    assert "You are logged in" in cell.data(Qt.ItemDataRole.ToolTipRole)
