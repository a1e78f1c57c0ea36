"""Structured output on the real engine: the shipped Gemma 3 270M (a base model) made to answer in
JSON, to a JSON schema and to a GBNF grammar, at any temperature; the grammar stage in each
StepRecord; bad grammars refused before anything is generated."""

from __future__ import annotations

import json
from typing import Any

import pytest

from desktop.core.sampling import SamplerSettings
from desktop.core.structured_output import grammar_effect
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import run

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12},
                   "age": {"type": "integer"},
                   "tags": {"type": "array", "items": {"type": "string", "maxLength": 8},
                            "maxItems": 2}},
    "required": ["name", "age", "tags"], "additionalProperties": False,
}


def _matches(value: Any) -> None:
    """`value` matches SCHEMA (checked by hand: jsonschema is not a dependency)."""
    assert isinstance(value, dict)
    assert set(value) == {"name", "age", "tags"}
    assert isinstance(value["name"], str)
    assert len(value["name"]) <= 12
    assert isinstance(value["age"], int)
    assert not isinstance(value["age"], bool)
    assert isinstance(value["tags"], list)
    assert len(value["tags"]) <= 2
    assert all(isinstance(t, str) and len(t) <= 8 for t in value["tags"])


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_a_json_schema_reply_parses_and_matches_the_schema(engine: EngineHost,
                                                           temperature: float) -> None:
    settings = SamplerSettings(structured_output="json_schema", json_schema=json.dumps(SCHEMA),
                               temperature=temperature, seed=11, max_tokens=64, top_n=20)
    steps, done = run(engine, "Here is a short story about a cat.\n", settings, capture=True)
    assert done.finish_reason == "stop", done.text
    _matches(json.loads(done.text))
    effects = [grammar_effect(s) for s in steps]
    assert all(e is not None for e in effects)
    # A base model asked for a story does not start with '{': the grammar overrode it.
    assert effects[0] is not None
    assert effects[0].overrode
    assert effects[0].removed_mass > 0.5


def test_any_json_gives_a_json_object(engine: EngineHost) -> None:
    settings = SamplerSettings(structured_output="json", temperature=0.0, seed=1,
                               max_tokens=48, top_n=10)
    _, done = run(engine, 'The configuration file:\n', settings)
    if done.finish_reason == "stop":
        assert isinstance(json.loads(done.text), dict)
    else:  # any JSON is unbounded: what came out so far is the start of an object
        assert done.text.lstrip().startswith("{")


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_a_gbnf_grammar_gives_exactly_one_of_its_words(engine: EngineHost,
                                                      temperature: float) -> None:
    settings = SamplerSettings(structured_output="gbnf", grammar='root ::= ("yes" | "no")',
                               temperature=temperature, seed=3, max_tokens=40)
    _, done = run(engine, "Is the sky green? Answer:", settings)
    assert done.text in ("yes", "no")
    assert done.finish_reason == "stop"


def test_a_bad_grammar_is_refused_before_anything_runs(engine: EngineHost) -> None:
    settings = SamplerSettings(structured_output="gbnf", grammar='root ::= "a" | item')
    events = list(engine.wait(engine.generate((("Hi", False),), settings), timeout=60))
    assert len(events) == 1
    assert isinstance(events[0], P.EngineError)
    assert events[0].kind == "bad_request"
    assert "rule 'item' is used at line 1, column 16 but never defined" in events[0].message


def test_a_schema_the_converter_cannot_take_is_refused_in_words(engine: EngineHost) -> None:
    settings = SamplerSettings(structured_output="json_schema",
                               json_schema='{"$ref": "https://example.com/x.json"}')
    events = list(engine.wait(engine.generate((("Hi", False),), settings), timeout=60))
    assert isinstance(events[-1], P.EngineError)
    assert "JSON schema" in events[-1].message


def test_a_replayed_step_keeps_the_grammar_in_place(engine: EngineHost) -> None:
    """Replay feeds the reply's earlier tokens to the grammar: the step's grammar stage is the
    one the reply really had, not the grammar's start."""
    settings = SamplerSettings(structured_output="json_schema", json_schema=json.dumps(SCHEMA),
                               temperature=0.0, seed=2, max_tokens=20, top_n=10)
    steps, _ = run(engine, "Data:", settings, capture=True)
    prompt = list(engine.wait(engine.tokenize((("Data:", False),)), timeout=30))[-1]
    assert isinstance(prompt, P.Tokenized)
    k = 3
    context = (*prompt.tokens, *(s.token_id for s in steps[:k]))
    events = list(engine.wait(engine.replay(context, steps[k].token_id, k, settings,
                                            len(prompt.tokens)), timeout=60))
    replayed = events[-1]
    assert isinstance(replayed, P.Replayed), replayed
    again, live = replayed.record.stage("grammar"), steps[k].stage("grammar")
    assert again is not None
    assert live is not None
    assert (again.kept, again.ids) == (live.kept, live.ids)
    # the live step's raw softmax was shifted by the step before's max, the replay's by its
    # own: the same numbers up to float rounding
    assert again.mass == pytest.approx(live.mass, rel=1e-6)
    assert again.probs == pytest.approx(live.probs, rel=1e-6)
