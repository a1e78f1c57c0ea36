"""Structured output settings in core: request fields read into settings, schema checks with
line and column, old stored settings still loading, and a step's grammar stage in words."""

from __future__ import annotations

import json

import pytest

from desktop.core.conversations.import_check import _Checker
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import StageView, StepRecord
from desktop.core.structured_output import grammar_effect, structured_from_request

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


def test_request_fields_become_settings() -> None:
    assert structured_from_request(None, None, None) == {}
    assert structured_from_request({"type": "text"}, None, None) == {}
    assert structured_from_request({"type": "json_object"}, None, None) == {
        "structured_output": "json"}
    fields = structured_from_request(
        {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}, None, None)
    assert fields["structured_output"] == "json_schema"
    assert json.loads(fields["json_schema"]) == SCHEMA
    assert json.loads(structured_from_request(None, SCHEMA, None)["json_schema"]) == SCHEMA
    assert structured_from_request(None, None, 'root ::= "a"') == {
        "structured_output": "gbnf", "grammar": 'root ::= "a"'}
    with pytest.raises(ValueError, match="only one of"):
        structured_from_request({"type": "json_object"}, SCHEMA, None)
    with pytest.raises(ValueError, match=r"json_schema\.schema' is missing"):
        structured_from_request({"type": "json_schema", "json_schema": {"name": "x"}}, None,
                                None)


def test_settings_check_the_schema_and_round_trip() -> None:
    good = SamplerSettings(structured_output="json_schema", json_schema=json.dumps(SCHEMA))
    assert SamplerSettings.from_json(good.to_json()) == good.validated()
    with pytest.raises(SettingsError, match="line 1, column 2"):
        good.replace(json_schema="{oops}").validated()
    with pytest.raises(SettingsError, match="structured_output must be one of"):
        good.replace(structured_output="xml").validated()
    with pytest.raises(SettingsError, match="grammar is empty"):
        good.replace(structured_output="gbnf").validated()
    # A record stored before structured output existed loads with it off.
    old = {k: v for k, v in SamplerSettings().to_json().items()
           if k not in ("structured_output", "json_schema", "grammar")}
    assert SamplerSettings.from_json(old).structured_output == "none"


def test_an_import_keeps_the_setting_and_refuses_a_bad_one() -> None:
    check = _Checker()
    raw = {**SamplerSettings().to_json(), "structured_output": "gbnf", "grammar": 'root ::= "a"'}
    assert check.sampler(raw, "s").grammar == 'root ::= "a"'
    bad = _Checker()
    assert bad.sampler({**raw, "grammar": 5}, "s") == SamplerSettings()
    assert bad.total == 1
    assert "grammar must be a text" in bad.listed[0]


def _step(stages: tuple[StageView, ...]) -> StepRecord:
    return StepRecord(step=0, token_id=9, text="", piece="", prob=1, raw_prob=0.1, raw_rank=2,
                      entropy_raw=1, entropy_final=0, stages=stages)


def test_the_grammar_stage_in_words() -> None:
    raw = StageView("raw", 100, 1.0, (5, 9), (0.41, 0.2))
    grammar = StageView("grammar", 40, 0.59, (9,), (1.0,))
    effect = grammar_effect(_step((raw, grammar)))
    assert effect is not None
    assert effect.wanted == 5
    assert effect.words("' Sure'") == (
        "grammar removed 41% of the mass; the model wanted \"' Sure'\"")
    kept_top = grammar_effect(_step((raw, StageView("grammar", 99, 0.9, (5,), (1.0,)))))
    assert kept_top is not None
    assert not kept_top.overrode
    assert grammar_effect(_step((raw,))) is None
