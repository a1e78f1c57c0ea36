"""The stage registry and everything that derives from it: settings validation, saved settings
from older versions (a real SQLite file), the OpenAI server's field checks, the CLI's flags and
the remote request body all take each knob's range, default and names from one table."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path

import pytest

from desktop.cli.main import build_parser, sampler_settings_from_args
from desktop.core.conversations.store import ConversationStore
from desktop.core.openai.fields import COMMON_FIELDS, SAMPLER_FIELDS, ApiError
from desktop.core.openai.requests import parse_chat_request
from desktop.core.sampler_stages import (
    ALL_PARAMS,
    DEFAULT_ORDER,
    GENERAL_PARAMS,
    ORDERABLE_STAGES,
    STAGE_PARAMS,
    STAGES,
    complete_order,
    removed_from_head,
    stage_label,
)
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.remote.client import RemoteModel, request_body

NUMERIC = [p for p in ALL_PARAMS if p.is_number]


def test_llama_cpps_default_order_and_every_stage_has_words() -> None:
    assert DEFAULT_ORDER == ("penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p",
                             "min_p", "xtc", "temperature")
    assert stage_label("top_p") == "top-p"
    assert stage_label("raw") == "raw softmax"
    for stage in STAGES:
        assert "_" not in stage.label
        assert stage.help
        assert stage.params
        assert stage.kind in ("truncation", "reshaping")
        assert (stage.cut != "") == (stage.kind == "truncation")
        assert stage.noop(SamplerSettings()) == (stage.name in (
            "penalties", "dry", "top_n_sigma", "typical", "xtc", "mirostat", "grammar"))
        for p in stage.params:
            assert p.label
            assert len(p.help) > 30
            # Structured output travels as response_format / grammar / json_schema, which
            # core.structured_output reads; every other knob has its request field names.
            assert p.api or p.field == "structured_output"


def test_settings_fields_are_the_registrys_with_its_defaults() -> None:
    defaults = SamplerSettings()
    fields = {f.name for f in dataclasses.fields(SamplerSettings)}
    for p in ALL_PARAMS:
        assert p.field in fields
        assert getattr(defaults, p.field) == p.default, p.field
    # Free text, not knobs: the stop strings, the order, and a structured output's schema/grammar.
    assert fields - {p.field for p in ALL_PARAMS} == {"stop", "order", "ignore_eos",
                                                      "json_schema", "grammar"}


@pytest.mark.parametrize("param", NUMERIC, ids=lambda p: p.field)
def test_validation_takes_each_range_from_the_registry(param) -> None:
    s = SamplerSettings()
    low = param.lo if not param.lo_open else param.lo + (1 if param.is_int else 1e-6)
    s.replace(**{param.field: type(param.default)(low)}).validated()
    s.replace(**{param.field: type(param.default)(param.hi)}).validated()
    below = param.lo if param.lo_open else param.lo - 1
    for bad in (below, param.hi + 1):
        with pytest.raises(SettingsError, match=param.field):
            s.replace(**{param.field: type(param.default)(bad)}).validated()
    if not param.is_int:
        with pytest.raises(SettingsError, match=param.field):
            s.replace(**{param.field: math.nan}).validated()


def test_an_order_may_leave_out_only_stages_that_are_off() -> None:
    legacy = ("top_k", "penalties", "typical", "top_p", "min_p", "temperature")
    SamplerSettings(order=legacy).validated()  # DRY, top-n-sigma and XTC are off by default
    with pytest.raises(SettingsError, match="order leaves out dry"):
        SamplerSettings(order=legacy, dry_multiplier=0.8).validated()
    with pytest.raises(SettingsError, match="unknown stage 'tfs'"):
        SamplerSettings(order=(*DEFAULT_ORDER, "tfs")).validated()
    with pytest.raises(SettingsError, match="at most once"):
        SamplerSettings(order=(*DEFAULT_ORDER, "top_k")).validated()
    assert complete_order(legacy) == ("top_k", "penalties", "dry", "top_n_sigma", "typical",
                                      "top_p", "min_p", "xtc", "temperature")
    assert complete_order(("temperature",))[-1] == "temperature"
    assert complete_order(()) == DEFAULT_ORDER


def test_settings_json_round_trips_and_reads_older_and_newer_versions() -> None:
    s = SamplerSettings(dry_multiplier=0.8, dry_sequence_breakers=("\n", "###"),
                        xtc_probability=0.3, top_n_sigma=1.2, dynatemp_range=0.4,
                        order=tuple(reversed(DEFAULT_ORDER)), stop=("a",))
    data = json.loads(json.dumps(s.to_json()))
    assert SamplerSettings.from_json(data) == s
    old = {"temperature": 0.5, "order": ["top_k", "penalties", "typical", "top_p", "min_p",
                                         "temperature"], "knob_from_the_future": 1}
    loaded = SamplerSettings.from_json(old)
    assert loaded.temperature == 0.5
    assert loaded.dry_multiplier == 0.0
    assert loaded.dry_sequence_breakers == ("\n", ":", '"', "*")
    assert loaded.order == complete_order(old["order"])
    loaded.validated()


def test_a_conversation_saved_before_the_new_stages_loads(tmp_path: Path) -> None:
    path = tmp_path / "openlid.sqlite3"
    with ConversationStore(path) as store:
        conv = store.create("old", sampler=SamplerSettings(temperature=0.6))
    # What an older Openlid wrote: no DRY/XTC/top-n-sigma/dynamic-temperature keys, six stages.
    old = SamplerSettings(temperature=0.6).to_json()
    for key in [k for k in old if k.startswith(("dry_", "xtc_", "dynatemp_", "top_n_sigma"))]:
        del old[key]
    old["order"] = ["penalties", "top_k", "typical", "top_p", "min_p", "temperature"]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE conversations SET sampler_json = ? WHERE id = ?",
                     (json.dumps(old), conv.id))
    with ConversationStore(path) as store:
        loaded = store.get(conv.id).sampler
    assert loaded == SamplerSettings(temperature=0.6)
    loaded.validated()


# --- the OpenAI server ---------------------------------------------------------------------


def chat(**fields: object) -> SamplerSettings:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_chat_request(body, max_tokens=10).settings


def refused(**fields: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        chat(**fields)
    return info.value


@pytest.mark.parametrize("param", [p for p in STAGE_PARAMS if p.is_number],
                         ids=lambda p: p.field)
def test_every_knob_is_a_request_field_with_the_registrys_range(param) -> None:
    hi = param.hi if param.api_hi is None else param.api_hi
    value = type(param.default)(hi)
    for name in param.api:
        assert SAMPLER_FIELDS[name] == param.field
        assert getattr(chat(**{name: value}), param.field) == value
        assert refused(**{name: hi + 1}).param == name
    if param.api_hi is not None:  # OpenAI's lower ceiling (temperature ≤ 2), not the panel's
        assert refused(**{param.api[0]: param.hi}).param == param.api[0]


def test_llama_server_sampler_names_and_breakers() -> None:
    s = chat(samplers=["top_k", "typ_p", "top_p", "min_p", "temp"], dry_multiplier=0.0,
             dry_sequence_breakers=["\n", "User:"])
    assert s.order == ("penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p", "min_p",
                       "xtc", "temperature")
    assert s.dry_sequence_breakers == ("\n", "User:")
    assert chat(samplers=["Top-K", "penalties", "nucleus", "min_p", "temperature"]).order[0] == (
        "top_k")
    error = refused(samplers=["top_k", "top_p", "min_p", "temperature"], repeat_penalty=1.2)
    assert error.param == "samplers"
    assert "penalties" in error.message
    assert refused(samplers=["top_k", "mystery"]).param == "samplers"
    assert refused(samplers=["top_k", "top-k", "top_p", "min_p", "temp"]).param == "samplers"
    assert refused(dry_sequence_breakers=[]).param == "dry_sequence_breakers"
    assert refused(dry_sequence_breakers=["x" * 41]).param == "dry_sequence_breakers"
    assert refused(dry_sequence_breakers="\n").param == "dry_sequence_breakers"
    assert refused(xtc_probability=1.5).param == "xtc_probability"
    assert set(COMMON_FIELDS) >= {n for p in STAGE_PARAMS for n in p.api}


# --- the CLI -------------------------------------------------------------------------------


def test_every_knob_has_a_cli_flag_and_reaches_the_settings() -> None:
    parser = build_parser()
    argv = ["generate", "--prompt", "x"]
    expected = {}
    for p in STAGE_PARAMS:
        if not p.is_number:
            continue
        value = p.hi if p.field != "mirostat" else 2
        value = type(p.default)(value)
        argv += [p.cli_flag, str(value)]
        expected[p.field] = value
    argv += ["--dry-sequence-breaker", "###", "--dry-sequence-breaker", "\n"]
    s = sampler_settings_from_args(parser.parse_args(argv))
    for field, value in expected.items():
        assert getattr(s, field) == value, field
    assert s.dry_sequence_breakers == ("###", "\n")
    with pytest.raises(SettingsError, match="xtc_threshold"):
        sampler_settings_from_args(parser.parse_args(
            ["generate", "--prompt", "x", "--xtc-threshold", "2"]))
    legacy = sampler_settings_from_args(parser.parse_args(
        ["generate", "--prompt", "x", "--order", "top_k,typ_p,top_p,min_p,temp,penalties"]))
    assert legacy.order[:2] == ("top_k", "typical")
    assert len(legacy.order) == 9
    assert not [p for p in GENERAL_PARAMS if p.field not in ("seed", "max_tokens", "top_n")]


# --- the remote request body ---------------------------------------------------------------


def test_request_body_sends_a_stages_knobs_once_any_is_touched() -> None:
    model = RemoteModel("http://h/v1", "llama")
    plain = request_body("chat", model, SamplerSettings(), 0)
    for key in ("dry_multiplier", "xtc_probability", "top_n_sigma", "dynatemp_range"):
        assert key not in plain
    s = SamplerSettings(dry_multiplier=0.8, xtc_probability=0.4, top_n_sigma=1.5,
                        dynatemp_range=0.3)
    body = request_body("chat", model, s, 0)
    assert (body["dry_multiplier"], body["dry_base"], body["dry_allowed_length"],
            body["dry_penalty_last_n"]) == (0.8, 1.75, 2, 64)
    assert body["dry_sequence_breakers"] == ["\n", ":", '"', "*"]
    assert (body["xtc_probability"], body["xtc_threshold"]) == (0.4, 0.1)
    assert body["top_n_sigma"] == 1.5
    assert (body["dynatemp_range"], body["dynatemp_exponent"]) == (0.3, 1.0)
    openai_only = request_body("chat", dataclasses.replace(model, llama_extras=False), s, 0)
    assert "dry_multiplier" not in openai_only
    assert "temperature" in openai_only
    # Another Openlid gets everything, and `openlid_steps` first: an older one refuses the
    # first field it does not know, and that must be the one the engine falls back on.
    far = request_body("chat", model, SamplerSettings(), 0, openlid=True)
    assert next(iter(far)) == "openlid_steps"
    assert {n for p in STAGE_PARAMS for n in p.api} <= set(far)
    assert far["samplers"] == list(ORDERABLE_STAGES)
    assert chat(**{k: v for k, v in far.items() if k not in ("model", "stream_options")})


def test_xtc_removal_is_read_from_the_listings() -> None:
    # Input listing (most probable first) and XTC's survivors: it took the first two.
    assert removed_from_head((5, 6, 7, 8), (0.4, 0.3, 0.2, 0.1), (7, 8)) == (5, 6)
    # It took more than the input lists: every listed one is gone.
    assert removed_from_head((5, 6), (0.5, 0.4), (9, 10)) == (5, 6)
    assert removed_from_head((5, 6), (0.5, 0.4), ()) == ()
