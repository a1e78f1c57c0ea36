"""Request validation and response building for the OpenAI-compatible API: pure, no engine."""

from __future__ import annotations

import math

import pytest

from desktop.core.openai import responses as S
from desktop.core.openai.requests import (
    ApiError,
    parse_chat_request,
    parse_completion_request,
)
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def chat(**fields: object):
    return parse_chat_request({**CHAT, **fields}, max_tokens=1000)


def completion(**fields: object):
    return parse_completion_request({"model": "m", "prompt": "Once", **fields}, max_tokens=1000)


def error_of(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)
    return info.value


# --- requests ---


def test_defaults_follow_llama_cpp_and_fill_max_tokens_from_the_context() -> None:
    request = chat()
    defaults = SamplerSettings()
    assert request.kind == "chat"
    assert request.messages == (("user", "hi"),)
    assert request.settings.temperature == defaults.temperature
    assert request.settings.top_k == defaults.top_k
    assert request.settings.max_tokens == 1000
    assert not request.stream
    assert not request.logprobs


def test_every_openai_and_llama_field_maps_to_sampler_settings() -> None:
    request = chat(
        temperature=0.5, top_p=0.9, max_completion_tokens=12, stop="END", seed=7,
        presence_penalty=0.5, frequency_penalty=-0.5, top_k=5, min_p=0.1, typical_p=0.8,
        repeat_penalty=1.1, repeat_last_n=32, mirostat=2, mirostat_tau=4.0,
        mirostat_eta=0.2, ignore_eos=True, n=1, logprobs=True, top_logprobs=3, stream=True,
        stream_options={"include_usage": True}, user="me",
        samplers=["top_k", "penalties", "typical", "top_p", "min_p", "temperature"],
    )
    s = request.settings
    assert (s.temperature, s.top_p, s.max_tokens, s.stop, s.seed) == (0.5, 0.9, 12, ("END",), 7)
    assert (s.presence_penalty, s.frequency_penalty) == (0.5, -0.5)
    assert (s.top_k, s.min_p, s.typical_p, s.repeat_penalty, s.repeat_last_n) == (
        5, 0.1, 0.8, 1.1, 32)
    assert (s.mirostat, s.mirostat_tau, s.mirostat_eta, s.ignore_eos) == (2, 4.0, 0.2, True)
    assert s.order[0] == "top_k"
    assert request.stream
    assert request.include_usage
    assert request.logprobs
    assert request.top_logprobs == 3


def test_null_means_absent_and_minus_one_seed_means_random() -> None:
    request = chat(temperature=None, seed=-1, stop=["a", "b"])
    assert request.settings.temperature == SamplerSettings().temperature
    assert request.settings.seed == SamplerSettings().seed
    assert request.settings.stop == ("a", "b")
    assert chat(max_tokens=3.0).settings.max_tokens == 3  # JavaScript clients send floats


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs
        ({"logprobs": 1}, "logprobs"),  # chat's logprobs is a boolean
        ({"n": 2}, "n"),
        ({"stop": ""}, "stop"),
        ({"stop": ["x"] * 17}, "stop"),
        ({"stop": [1]}, "stop"),
        ({"seed": 2**40}, "seed"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"typical_p": 0}, "typical_p"),
        ({"mirostat": 3}, "mirostat"),
        ({"samplers": ["top_k"]}, "samplers"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
        ({"stream": True, "stream_options": {"other": 1}}, "stream_options"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format"),
        ({"response_format": {"type": "json_object"}, "grammar": 'root ::= "a"'},
         "response_format"),
        ({"json_schema": "not an object"}, "json_schema"),
        ({"grammar": ""}, "grammar"),
        ({"best_of": 1}, "best_of"),  # a completions field, unknown to chat
        ({"frobnicate": 1}, "frobnicate"),
        ({"model": None}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
         "messages[0].tool_calls"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
        ),
    ],
)
def test_bad_chat_fields_are_refused_with_the_param_named(fields: dict, param: str) -> None:
    exc = error_of(parse_chat_request, {**CHAT, **fields}, max_tokens=10)
    body = exc.to_json()
    assert exc.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    assert body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_unknown_field_reads_like_openai() -> None:
    exc = error_of(chat, colour="blue")
    assert exc.message == "Unrecognized request argument supplied: colour"
    assert exc.code == "unknown_parameter"


def test_body_must_be_an_object_with_a_model() -> None:
    assert error_of(parse_chat_request, [1, 2], max_tokens=10).code == "invalid_json"
    assert error_of(parse_chat_request, {"messages": CHAT["messages"]},
                    max_tokens=10).param == "model"


def test_content_parts_and_developer_role() -> None:
    request = chat(messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
         "name": "ann"},
    ])
    assert request.messages == (("system", "Be brief."), ("user", "ab"))


def test_top_n_covers_top_logprobs() -> None:
    base = SamplerSettings(top_n=5)
    request = parse_chat_request({**CHAT, "logprobs": True, "top_logprobs": 20},
                                 max_tokens=10, base=base)
    assert request.settings.top_n == 20


def test_completion_prompts_and_legacy_logprobs() -> None:
    assert completion().prompt == "Once"
    assert completion(prompt=["Twice"]).prompt == "Twice"
    tokens = completion(prompt=[2, 5, 9])
    assert tokens.prompt_tokens == (2, 5, 9)
    assert tokens.prompt == ""
    request = completion(logprobs=3, echo=False, best_of=1, suffix=None)
    assert request.logprobs
    assert request.top_logprobs == 3
    zero = completion(logprobs=0)
    assert zero.logprobs
    assert zero.top_logprobs == 0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": [-1]}, "prompt"),
        ({"prompt": {"text": "x"}}, "prompt"),
        ({"echo": True}, "echo"),
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 2}, "best_of"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": 21}, "logprobs"),
        ({"messages": []}, "messages"),
    ],
)
def test_bad_completion_fields(fields: dict, param: str) -> None:
    exc = error_of(parse_completion_request, {"model": "m", "prompt": "x", **fields},
                   max_tokens=10)
    assert exc.param == param


def test_missing_prompt() -> None:
    exc = error_of(parse_completion_request, {"model": "m"}, max_tokens=10)
    assert exc.param == "prompt"


# --- responses ---


def record(step: int, text: str, token_id: int, raw_prob: float = 0.5,
           piece: str | None = None) -> StepRecord:
    ids = (token_id, 99)
    return StepRecord(
        step=step, token_id=token_id, text=text, piece=text if piece is None else piece,
        prob=raw_prob, raw_prob=raw_prob, raw_rank=1, entropy_raw=1.0, entropy_final=1.0,
        stages=(StageView("raw", kept=10, mass=1.0, ids=ids, probs=(raw_prob, 0.1)),),
        pieces={token_id: text if piece is None else piece, 99: "x"},
    )


def done(text: str, finish: str = "stop", stop: str | None = None) -> GenerationDone:
    return GenerationDone(finish, text, Usage(3, 4, 1), Timings(1, 1, 1, 1), stop)


def test_logprob_entries_use_the_raw_stage() -> None:
    entry = S.chat_logprob(record(0, "Hi", 5, raw_prob=0.25), top=5)
    assert entry["token"] == "Hi"
    assert entry["logprob"] == pytest.approx(math.log(0.25))
    assert entry["bytes"] == list(b"Hi")
    assert [t["token"] for t in entry["top_logprobs"]] == ["Hi", "x"]
    assert entry["top_logprobs"][1]["logprob"] == pytest.approx(math.log(0.1))
    assert S.chat_logprob(record(0, "Hi", 5), top=1)["top_logprobs"][0]["token"] == "Hi"
    assert S.logprob(0.0) == S.IMPROBABLE_LOGPROB


def test_escaped_bytes_become_bytes_again() -> None:
    assert S.token_bytes("\\xe2\\x80") == [0xE2, 0x80]
    assert S.token_bytes("a\\xffb") == [0x61, 0xFF, 0x62]
    assert S.token_bytes("\\x41") == list(b"\\x41")  # not an escape llama.cpp would write
    assert S.token_bytes("é") == list("é".encode())


def test_release_holds_back_a_possible_stop_string_and_drops_what_follows() -> None:
    release = S.TextRelease(("END",))
    assert release.feed(record(0, "Hello", 1)) == ("Hello", [(0, record(0, "Hello", 1))])
    text, tokens = release.feed(record(1, " E", 2))
    assert text == " "
    assert [r.token_id for _, r in tokens] == [2]
    text, tokens = release.feed(record(2, "ND more", 3))
    assert text == ""
    assert tokens == []
    text, tokens = release.finish(done("Hello ", stop="END"))
    assert text == ""
    assert tokens == []


def test_release_drops_the_end_of_generation_token() -> None:
    release = S.TextRelease(())
    release.feed(record(0, "Hi", 1))
    assert release.feed(record(1, "", 2)) == ("", [])
    assert release.finish(done("Hi")) == ("", [])


def test_release_keeps_a_token_split_mid_character() -> None:
    release = S.TextRelease(())
    assert release.feed(record(0, "", 1, piece="\\xe2")) == ("", [])
    text, tokens = release.feed(record(1, "€", 2, piece="\\x82\\xac"))
    assert text == "€"
    assert [r.token_id for _, r in tokens] == [1, 2]


def test_chat_response_shape() -> None:
    r = record(0, "Hi", 5)
    body = S.chat_response(response_id="chatcmpl-1", created=1, model="m", done=done("Hi"),
                           tokens=[(0, r)], logprobs=True, top=1, fingerprint="f")
    choice = body["choices"][0]
    assert body["object"] == "chat.completion"
    assert choice["message"] == {"role": "assistant", "content": "Hi", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert len(choice["logprobs"]["content"]) == 1
    assert body["usage"]["total_tokens"] == 7
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 1}
    plain = S.chat_response(response_id="c", created=1, model="m", done=done("Hi", "context"),
                            tokens=[], logprobs=False, top=0, fingerprint="f")
    assert plain["choices"][0]["logprobs"] is None
    assert plain["choices"][0]["finish_reason"] == "length"


def test_legacy_completion_logprobs_count_offsets_from_the_prompt() -> None:
    tokens = [(0, record(0, "Hi", 5)), (2, record(1, " there", 6))]
    legacy = S.completion_logprobs(tokens, top=2, text_offset=10)
    assert legacy["tokens"] == ["Hi", " there"]
    assert legacy["text_offset"] == [10, 12]
    assert legacy["token_logprobs"][0] == pytest.approx(math.log(0.5))
    assert legacy["top_logprobs"][0] == {"Hi": pytest.approx(math.log(0.5)),
                                         "x": pytest.approx(math.log(0.1))}


def test_chunks_and_usage_chunk() -> None:
    chunk = S.chat_chunk(response_id="c", created=1, model="m", delta={"content": "a"},
                         tokens=None, fingerprint="f", include_usage=True)
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["usage"] is None
    assert chunk["choices"][0]["logprobs"] is None
    usage = S.usage_chunk(response_id="c", created=1, model="m", obj="chat.completion.chunk",
                          usage=Usage(1, 2), fingerprint="f")
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == 3
    text = S.completion_chunk(response_id="c", created=1, model="m", text="a",
                              finish="length", fingerprint="f")
    assert text["choices"][0]["finish_reason"] == "length"
    assert "usage" not in text
