"""Speculative decoding's pure parts: n-gram proposals, the vocabulary rule, the load settings'
checks, and the draft fields of StepRecord and GenerationDone through JSON, the conversation
store and an import (old records without them still load)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from desktop.cli.draft import add_draft_args, draft_fields
from desktop.core.conversations.files import export_json, import_json
from desktop.core.conversations.records import decode_steps, encode_steps
from desktop.core.conversations.store import ConversationStore
from desktop.core.drafting import (
    DraftCounts,
    draft_words,
    ngram_draft,
    vocab_mismatch,
)
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SettingsError
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage, step_from_json


def test_ngram_proposes_what_followed_the_longest_latest_match() -> None:
    #          0  1  2  3  4  5  6  7  8  9  10 11
    tokens = [1, 2, 3, 9, 8, 2, 3, 4, 5, 6, 2, 3]
    # "2 3" occurs at 1-2 and 5-6; "8 2 3" nowhere else, so length 2 wins, the latest one.
    assert ngram_draft(tokens, 3) == [4, 5, 6]
    assert ngram_draft(tokens, 1) == [4]
    # A longer match beats a later shorter one.
    longer = [7, 1, 2, 3, 50, 51, 0, 2, 3, 60, 7, 1, 2, 3]
    assert ngram_draft(longer, 2) == [50, 51]


def test_ngram_needs_two_matching_tokens_and_stops_at_the_end_of_the_context() -> None:
    assert ngram_draft([5, 1, 7, 1], 4) == []  # one token alone is not a match
    assert ngram_draft([1, 2, 1, 2], 8) == [1, 2]  # the continuation runs into the end
    assert ngram_draft([], 4) == []
    assert ngram_draft([1, 2, 3], 0) == []
    assert ngram_draft(tuple(range(10)) * 2, 3) == [0, 1, 2]  # any sequence, not just lists


def test_vocab_mismatch_names_the_size_or_the_token() -> None:
    same = [f"t{i}".encode() for i in range(1000)]
    other = [*same[:510], b"zz", *same[511:]]  # 510: a sampled id (every 15th)
    assert vocab_mismatch(1000, 1000, same.__getitem__, same.__getitem__) is None
    assert vocab_mismatch(1000, 1100, same.__getitem__, (same * 2).__getitem__) is None
    why = vocab_mismatch(1000, 384, same.__getitem__, same.__getitem__)
    assert why is not None
    assert "384 tokens" in why
    assert "1,000" in why
    assert "tokenizer" in why
    why = vocab_mismatch(1000, 1000, same.__getitem__, other.__getitem__)
    assert why is not None
    assert "token 510 is 'zz' in the draft model but 't510'" in why


def test_load_settings_check_the_draft_in_words() -> None:
    assert LoadSettings().draft == "none"
    LoadSettings(draft="ngram").validated()
    LoadSettings(draft="model", draft_model="/m/draft.gguf").validated()
    cases = {
        "draft must be one of none, model, ngram": LoadSettings(draft="eagle"),
        "a draft model needs its GGUF file": LoadSettings(draft="model", draft_model=" "),
        "draft tokens must be between 1 and 64": LoadSettings(draft="ngram", n_draft=0),
        "minimum probability must be between 0 and 1": LoadSettings(draft_p_min=1.5),
        "the batch size must be larger than the draft tokens": LoadSettings(
            draft="ngram", n_draft=16, n_batch=16),
    }
    for words, settings in cases.items():
        with pytest.raises(SettingsError, match=words):
            settings.validated()
    # Saved settings from before drafting load with drafting off.
    assert LoadSettings.from_json({"n_ctx": 2048}).draft == "none"
    again = LoadSettings.from_json(LoadSettings(draft="ngram", n_draft=5).to_json())
    assert (again.draft, again.n_draft) == ("ngram", 5)


def _record(draft: int = -1) -> StepRecord:
    return StepRecord(step=3, token_id=7, text=" a", piece="▁a", prob=0.5, raw_prob=0.4,
                      raw_rank=1, entropy_raw=1.5, entropy_final=1.0,
                      stages=(StageView("raw", 2, 1.0, (7, 8), (0.6, 0.4)),),
                      pieces={7: "▁a", 8: "▁b", **({draft: "▁z"} if draft not in (-1, 7, 8)
                                                    else {})},
                      n_vocab=100, draft_token=draft)


def test_step_records_keep_the_drafts_proposal_through_json() -> None:
    for draft, accepted in ((7, True), (9, False), (8, False), (-1, False)):
        record = _record(draft)
        assert record.accepted is accepted
        data = record.to_json()
        assert ("draft_token" in data) is (draft >= 0)
        back = step_from_json({**json.loads(json.dumps(data)), "n_vocab": 100})
        assert back == record
    assert _record(9).to_json()["draft_piece"] == "▁z"


def test_old_step_rows_and_done_events_without_draft_fields_still_load() -> None:
    old = _record().to_json()
    assert "draft_token" not in old
    assert step_from_json(old).draft_token == -1
    assert decode_steps(encode_steps([_record(9), _record()]), 1) == [_record(9), _record()]
    done = GenerationDone("stop", "x", Usage(3, 2), Timings(1.0, 2.0, 3.0, 4.0))
    assert "draft" not in done.to_json()
    counts = DraftCounts("ngram", proposed=10, accepted=6, passes=3)
    drafted = GenerationDone("stop", "x", Usage(3, 2), Timings(1.0, 2.0, 3.0, 4.0),
                             draft=counts)
    assert drafted.to_json()["draft"] == {"kind": "ngram", "proposed": 10, "accepted": 6,
                                          "passes": 3}
    assert DraftCounts.from_json(counts.to_json()) == counts
    assert DraftCounts.from_json(None) is None
    assert DraftCounts.from_json({"kind": 1}) is None


def test_draft_words_for_a_status_line() -> None:
    assert draft_words(None) == ""
    assert draft_words(DraftCounts("model")) == "draft: nothing proposed"
    assert (draft_words(DraftCounts("ngram", 20, 15, 4), speedup=1.4)
            == "n-gram draft: 15/20 accepted (75%), ×1.40 speed")
    assert DraftCounts("model", 4, 1).rate == 0.25
    assert DraftCounts("model").rate == 0.0


def test_an_exported_reply_keeps_its_draft_proposals(tmp_path: Path) -> None:
    with ConversationStore(tmp_path / "a.sqlite3") as store:
        c = store.create("drafted")
        store.append(c.id, "user", "Hi")
        answer = store.append(c.id, "assistant", " a a")
        records = [_record(7), _record(9), _record()]
        store.save_steps(answer.id, records)
        exported = json.loads(json.dumps(export_json(store, c.id)))
    with ConversationStore(tmp_path / "b.sqlite3") as store:
        copy = import_json(store, exported)
        reply = store.active_path(copy.id)[-1]
        assert store.load_steps(reply.id) == records


def test_cli_draft_flags_become_load_settings() -> None:
    p = argparse.ArgumentParser()
    add_draft_args(p)

    def load(*argv: str) -> LoadSettings:
        return LoadSettings(**draft_fields(p.parse_args(argv))).validated()

    assert load().draft == "none"
    assert load("--draft", "ngram", "--draft-max", "5").n_draft == 5
    assert load("--draft").draft == "ngram"
    assert load("--draft-model", "d.gguf").draft == "model"
    assert load("--draft", "--draft-model", "d.gguf").draft_model == "d.gguf"
    with pytest.raises(SettingsError, match="a draft model needs its GGUF file"):
        load("--draft", "model")
    assert draft_fields(argparse.Namespace()) == {}
