"""The X-ray's parts table names each document excerpt's file, page and BM25 score, and a
splitter divides the table from the "Without this part" pane (usable at 1280×720)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.core.conversations import xray as X
from desktop.ui.chat.store_service import StoreService
from desktop.ui.xray.view import XrayView, open_xray


def _turn() -> X.TurnXray:
    parts = (
        X.PromptPart(X.TEMPLATE, "<start_of_turn>user\n", 4, 1),
        X.PromptPart(X.DOCUMENT, "[report.pdf p3] The door code is 4417.", 12, 1,
                     doc=("report.pdf", 3, 4.125)),
        X.PromptPart(X.DOCUMENT, "[notes.md] Bees.", 5, 1, exact=False,
                     doc=("notes.md", 0, None)),
        X.PromptPart(X.NEW, "What is the door code?", 6, 1, message_id=1),
    )
    return X.TurnXray(2, 1, True, parts, prompt_tokens=27, n_ctx=1024, has_parts=True)


@pytest.fixture
def view(qtbot: QtBot, tmp_path: Path) -> Iterator[XrayView]:
    service = StoreService(tmp_path / "db.sqlite3")
    xray = open_xray(None, service, lambda: None)
    qtbot.addWidget(xray)
    yield xray
    service.stop()


def test_document_rows_give_file_page_and_score(view: XrayView) -> None:
    view._show(X.ConversationXray(1, (_turn(),), 1))
    docs = next(view.parts.topLevelItem(i) for i in range(view.parts.topLevelItemCount())
                if view.parts.topLevelItem(i).text(0).lower().startswith("documents"))
    rows = [[docs.child(i).text(c) for c in range(4)] for i in range(docs.childCount())]
    assert rows == [["report.pdf · page 3", "12", "", "BM25 4.12"],
                    ["notes.md", "≈ 5", "", "whole"]]
    assert docs.isExpanded()
    # Choosing an excerpt chooses the documents part for "Without this part".
    key = docs.child(0).data(0, Qt.ItemDataRole.UserRole)
    assert tuple(key) == (X.DOCUMENT, 1)


def test_side_splitter_at_1280x720(qtbot: QtBot, view: XrayView) -> None:
    view.show()
    qtbot.waitExposed(view)
    split = view.side_split
    assert split.orientation() == Qt.Orientation.Vertical
    assert split.widget(1) is view.ablation
    assert view.size().width() == 1280
    assert view.size().height() == 720
    top, bottom = split.sizes()
    assert top > 100
    assert bottom > 100
    split.setSizes([500, 100])
    assert split.sizes()[0] > split.sizes()[1]
