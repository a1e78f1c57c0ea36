"""The Sampling panel's Structured output section, driven offscreen: the kind selector, the
schema editor's live check with line and column, presets, the GBNF tab, and settings that stay
valid while the schema being typed is not."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from desktop.core.sampling import SamplerSettings
from desktop.core.structured_output import GRAMMAR_PRESETS, SCHEMA_PRESETS
from desktop.ui.panels.sampling_panel import SamplingPanel

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def panel(qtbot) -> SamplingPanel:
    p = SamplingPanel()
    qtbot.addWidget(p)
    return p


def test_a_schema_preset_turns_json_schema_on(qtbot, panel: SamplingPanel) -> None:
    box = panel.structured
    assert panel.settings().structured_output == "none"
    assert not box.tabs.isEnabled()
    index = box.schema_presets.findData("Person (name, age)")
    with qtbot.waitSignal(panel.sig_settings_changed) as blocker:
        box.schema_presets.activated.emit(index)
    s = blocker.args[0]
    assert s.structured_output == "json_schema"
    assert json.loads(s.json_schema) == json.loads(SCHEMA_PRESETS["Person (name, age)"])
    assert box.tabs.isEnabled()
    assert box.tabs.currentIndex() == 0
    assert s.validated() == s


def test_a_schema_with_a_json_error_says_where_and_keeps_the_last_valid_one(
        qtbot, panel: SamplingPanel) -> None:
    box = panel.structured
    box.schema_presets.activated.emit(box.schema_presets.findData("List of strings"))
    good = panel.settings().json_schema
    box.schema_edit.setPlainText('{"type": "array",\n  "items": {"type": }}')
    assert box.schema_message.isVisibleTo(panel)
    assert "line 2, column 21" in box.schema_message.text()
    assert "last valid schema" in box.schema_message.text()
    s = panel.settings()
    assert s.json_schema == good
    assert s.validated() == s
    assert box.schema_edit.toPlainText().endswith('{"type": }}')  # what was typed stays
    box.schema_edit.setPlainText('{"type": "array", "items": {"type": "integer"}}')
    assert not box.schema_message.isVisibleTo(panel)
    assert json.loads(panel.settings().json_schema)["items"] == {"type": "integer"}


def test_the_gbnf_tab_and_kind_selector(qtbot, panel: SamplingPanel) -> None:
    box = panel.structured
    box.kind_combo.setCurrentIndex(box.kind_combo.findData("gbnf"))
    assert box.tabs.currentIndex() == 1
    assert box.grammar_message.isVisibleTo(panel)  # empty: said, and no constraint yet
    assert panel.settings().structured_output == "none"
    qtbot.keyClicks(box.grammar_edit, 'root ::= "a"')
    assert panel.settings().structured_output == "gbnf"
    assert panel.settings().grammar == 'root ::= "a"'
    box.grammar_presets.activated.emit(box.grammar_presets.findData("Yes or no"))
    assert panel.settings().grammar == GRAMMAR_PRESETS["Yes or no"]
    box.kind_combo.setCurrentIndex(box.kind_combo.findData("json"))
    s = panel.settings()
    assert s.structured_output == "json"
    assert s.grammar == GRAMMAR_PRESETS["Yes or no"]  # kept for when GBNF comes back


def test_stored_settings_show_and_survive_a_preset(qtbot, panel: SamplingPanel) -> None:
    stored = SamplerSettings(structured_output="json_schema",
                             json_schema=SCHEMA_PRESETS["Yes or no"], grammar='root ::= "z"')
    panel.set_settings(stored)
    assert panel.settings() == stored
    assert panel.structured.kind_combo.currentData() == "json_schema"
    panel.apply_preset("Creative")  # a preset shapes the distribution, not the reply's format
    assert panel.settings().structured_output == "json_schema"
    assert panel.settings().json_schema == stored.json_schema
    assert Qt  # keep the import honest for the offscreen plugin
