"""The MCP panel and the permission dialog, driven offscreen: mcp.json from the data folder, a
real stdio MCP server (tests/unit/mcp_add_server.py) connected with a click, its tools listed,
a tool called through the service, a server that cannot start said in words, and the three
answers of the permission dialog."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from desktop.core.tools.calls import ToolCall
from desktop.core.tools.mcp_config import mcp_config_path
from desktop.ui.tools.mcp_panel import McpPanel
from desktop.ui.tools.mcp_service import McpService
from desktop.ui.tools.permission import ToolPermissionDialog, ToolPermissions

pytest.importorskip("mcp")
pytestmark = pytest.mark.usefixtures("no_dangling")

SERVER = str(Path(__file__).parents[1] / "unit" / "mcp_add_server.py")


@pytest.fixture
def service(home: Path) -> Iterator[McpService]:
    mcp_config_path().write_text(json.dumps({"mcpServers": {
        "adder": {"command": sys.executable, "args": [SERVER]},
        "ghost": {"command": "openlid-no-such-command"},
        "half": {"args": []},
    }}), encoding="utf-8")
    s = McpService(start_timeout=60)
    yield s
    s.shutdown()


def select(panel: McpPanel, name: str) -> None:
    item = panel._server_item(name)
    assert item is not None
    panel.tree.setCurrentItem(item)


def test_nothing_runs_until_a_server_is_connected(qtbot: Any, service: McpService) -> None:
    panel = McpPanel(service)
    qtbot.addWidget(panel)
    assert panel.tree.topLevelItemCount() == 0  # not read yet: nothing listed, nothing started
    service.reload()
    assert [panel.tree.topLevelItem(i).text(0) for i in range(2)] == ["adder", "ghost"]
    assert "server 'half' in mcp.json was left out" in panel.error_label.text()
    assert panel.tree.topLevelItem(0).text(1) == "not connected"
    select(panel, "adder")
    assert panel.connect_button.isEnabled()
    panel.connect_button.click()
    adder = panel._server_item("adder")
    qtbot.waitUntil(lambda: adder.text(1) == "connected", timeout=60_000)
    assert sorted(adder.child(i).text(0) for i in range(adder.childCount())) == [
        "add", "fail", "shout"]
    assert panel.disconnect_button.isEnabled()
    with qtbot.waitSignal(service.sig_tool_finished, timeout=30_000) as finished:
        call_id = service.call_tool("adder", "add", {"a": 20, "b": 22})
    assert finished.args[0] == call_id
    assert finished.args[1].text == "42"
    panel.disconnect_button.click()
    qtbot.waitUntil(lambda: adder.text(1) == "not connected", timeout=30_000)


def test_a_server_that_cannot_start_is_said_in_words(qtbot: Any, service: McpService) -> None:
    panel = McpPanel(service)
    qtbot.addWidget(panel)
    service.reload()
    select(panel, "ghost")
    panel.connect_button.click()
    ghost = panel._server_item("ghost")
    qtbot.waitUntil(lambda: ghost.text(1) == "failed", timeout=30_000)
    assert ("could not start 'ghost': the command 'openlid-no-such-command' was not found"
            in panel.error_label.text())
    assert panel.connect_button.isEnabled()  # try again after fixing mcp.json


def test_a_bad_file_is_said_in_words(qtbot: Any, home: Path) -> None:
    mcp_config_path().write_text("{oops", encoding="utf-8")
    s = McpService()
    try:
        panel = McpPanel(s)
        qtbot.addWidget(panel)
        s.reload()
        assert "mcp.json is not valid JSON" in panel.error_label.text()
        assert "line 1, column 2" in panel.error_label.text()
    finally:
        s.shutdown()


CALL = ToolCall("call_1", "add", '{"a": 2, "b": 3}')


def answer_with(qtbot: Any, button: str) -> None:
    def click() -> None:
        from PySide6.QtWidgets import QApplication

        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ToolPermissionDialog)
        assert '"a": 2' in dialog.arguments.toPlainText()
        getattr(dialog, button).click()

    QTimer.singleShot(0, click)


def test_permission_dialog_once_always_and_deny(qtbot: Any) -> None:
    permissions = ToolPermissions()
    answer_with(qtbot, "deny_button")
    assert not permissions.ask(None, "adder", CALL)
    answer_with(qtbot, "once_button")
    assert permissions.ask(None, "adder", CALL)
    assert not permissions.allowed("adder", "add")  # once: asked again next time
    answer_with(qtbot, "always_button")
    assert permissions.ask(None, "adder", CALL)
    assert permissions.ask(None, "adder", CALL)  # no dialog now: none is answered
    assert not permissions.allowed("other", "add")


def test_mcp_json_is_edited_in_the_panel_checked_before_it_is_saved(
        qtbot: Any, home: Path) -> None:
    """As LM Studio's "Edit mcp.json": no file yet, the editor starts from an empty list; a
    mistake is said with its line and column and nothing is written; a good file is saved and
    listed at once, and nothing is connected by saving it."""
    from desktop.ui.tools.mcp_editor import McpConfigEditor

    service = McpService(start_timeout=60)
    try:
        panel = McpPanel(service)
        qtbot.addWidget(panel)
        assert "Edit mcp.json" in panel.path_label.text()
        editor = panel.edit_config()
        assert isinstance(editor, McpConfigEditor)
        assert json.loads(editor.text.toPlainText()) == {"mcpServers": {}}
        editor.text.setPlainText('{"mcpServers": {"adder": {"command": "x",}}}')
        editor.buttons.accepted.emit()  # Save
        assert "is not valid JSON" in editor.error_label.text()
        assert "line 1, column 42" in editor.error_label.text()
        cursor = editor.text.textCursor()  # put where the JSON went wrong
        assert (cursor.blockNumber(), cursor.positionInBlock()) == (0, 41)
        assert editor.isVisible()
        assert not mcp_config_path().exists()
        editor.text.setPlainText(json.dumps(
            {"mcpServers": {"adder": {"command": sys.executable, "args": [SERVER]}}}))
        editor.buttons.accepted.emit()
        assert not editor.isVisible()
        assert json.loads(mcp_config_path().read_text(encoding="utf-8"))["mcpServers"]["adder"]
        assert panel.tree.topLevelItem(0).text(0) == "adder"
        assert panel.tree.topLevelItem(0).text(1) == "not connected"
    finally:
        service.shutdown()


def test_a_file_the_editor_cannot_show_is_left_as_it_is(qtbot: Any, home: Path) -> None:
    mcp_config_path().write_bytes(b'{"mcpServers": {}} \xff\xfe')
    service = McpService(start_timeout=60)
    try:
        panel = McpPanel(service)
        qtbot.addWidget(panel)
        editor = panel.edit_config()
        assert "not UTF-8 text; it was left as it is" in editor.error_label.text()
        from PySide6.QtWidgets import QDialogButtonBox
        assert not editor.buttons.button(QDialogButtonBox.StandardButton.Save).isEnabled()
        editor.reject()
        assert mcp_config_path().read_bytes().endswith(b"\xff\xfe")
    finally:
        service.shutdown()
