"""Hostile and damaged conversation imports (issue 17): every bad field is named in one error,
nothing is stored, the tree is rebuilt in linear time, and a conversation list survives absurd
values stored before imports were checked. Real SQLite files throughout."""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.conversations import files
from desktop.core.conversations.files import (
    ImportRefused,
    export_json,
    import_json,
    read_export_file,
)
from desktop.core.conversations.import_check import MAX_LISTED, MAX_SHOWN, MAX_TEXT
from desktop.core.conversations.records import Conversation, Message, tree_order
from desktop.core.conversations.store import ConversationStore, StoreError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StageView, StepRecord


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "openlid.sqlite3") as s:
        yield s


def export(conversation: dict[str, Any] | None = None,
           messages: list[Any] | None = None) -> dict[str, Any]:
    return {"format": "openlid-conversation", "version": 1,
            "conversation": {"title": "t", **(conversation or {})},
            "messages": messages if messages is not None else [
                {"id": 1, "parent_id": None, "role": "user", "content": "Hi"}]}


def reply(**changes: Any) -> dict[str, Any]:
    return {"id": 1, "parent_id": None, "role": "assistant", "content": "x", **changes}


def step_row(**changes: Any) -> dict[str, Any]:
    record = StepRecord(step=0, token_id=7, text=" a", piece="▁a", prob=0.5, raw_prob=0.4,
                        raw_rank=1, entropy_raw=1.5, entropy_final=1.0,
                        stages=(StageView("raw", 2, 1.0, (7, 8), (0.6, 0.4)),),
                        pieces={7: "▁a", 8: "▁b"}, n_vocab=100)
    return {**record.to_json(), "n_vocab": 100, **changes}


def nothing_stored(store: ConversationStore) -> bool:
    counts = [store._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("conversations", "messages", "message_steps")]
    return counts == [0, 0, 0]


# (the file, the path and words its one error must name) — the cases of issue 17, then others
HOSTILE = [
    ("updated 1e20", export({"updated": 1e20}),
     "conversation.updated: expected a time between 1970 and 3000 (seconds since 1970), "
     "got 1e+20"),
    ("updated Infinity",
     json.loads('{"format": "openlid-conversation", "conversation": {"updated": Infinity},'
                ' "messages": []}'),
     "conversation.updated: expected a time between 1970 and 3000 (seconds since 1970), "
     "got Infinity"),
    ("created NaN",
     json.loads('{"format": "openlid-conversation", "conversation": {"created": NaN},'
                ' "messages": []}'), "conversation.created: expected a time", ),
    ("steps [5]", export(messages=[reply(steps=[5])]),
     "messages[0].steps[0]: expected an object, got 5"),
    ("steps [null]", export(messages=[reply(steps=[None])]),
     "messages[0].steps[0]: expected an object, got null"),
    ("message time before 1970", export(messages=[reply(created=-1)]),
     "messages[0].created: expected a time between 1970 and 3000"),
    ("a parent loop", export(messages=[
        {"id": 1, "parent_id": 2, "role": "user", "content": "a"},
        {"id": 2, "parent_id": 1, "role": "assistant", "content": "b"}]),
     "messages[0].parent_id: 2 makes a loop (the message would be its own ancestor)"),
    ("its own parent", export(messages=[reply(parent_id=1)]),
     "messages[0].parent_id: 1 makes a loop"),
    ("a missing parent", export(messages=[reply(parent_id=5)]),
     "messages[0].parent_id: no message has the id 5"),
    ("a shared id", export(messages=[reply(), reply()]),
     "messages[1].id: 1 is also the id of messages[0]"),
    ("a leaf that is not there", export({"active_leaf_id": 9}),
     "conversation.active_leaf_id: no message has the id 9"),
    ("a role", export(messages=[reply(role="wizard")]),
     'messages[0].role: expected one of system, user, assistant, tool, got "wizard"'),
    ("a boolean id", export(messages=[reply(id=True)]),
     "messages[0].id: expected a whole number, got true"),
    ("a mode", export({"mode": "poem"}), 'conversation.mode: expected one of chat, completion'),
    ("a title that is a list", export({"title": ["a"]}),
     "conversation.title: expected text, got a list of 1"),
    ("content too long", export(messages=[reply(content="x" * (MAX_TEXT + 1))]),
     f"messages[0].content: {MAX_TEXT + 1:,} characters, more than {MAX_TEXT:,}"),
    ("no content", export(messages=[{"id": 1, "parent_id": None, "role": "user"}]),
     "messages[0].content: missing"),
    ("a sampler of the wrong type", export({"sampler": {"temperature": "hot"}}),
     'conversation.sampler.temperature: expected a finite number, got "hot"'),
    ("stop strings that are not a list", export({"sampler": {"stop": 5}}),
     "conversation.sampler.stop: expected a list of texts, got 5"),
    ("a sampler out of range", export({"sampler": {"top_p": 7}}),
     "conversation.sampler: top_p must be between 0 and 1"),
    ("metadata the chat would choke on", export(messages=[reply(meta={"tokens_per_second":
                                                                      "fast"})]),
     'messages[0].meta.tokens_per_second: expected a finite number ≥ 0, got "fast"'),
    ("metadata that is a list", export(messages=[reply(meta=[1])]),
     "messages[0].meta: expected an object, got a list of 1"),
    ("steps on a user message", export(messages=[reply(role="user", steps=[step_row()])]),
     "messages[0].steps: only replies (role assistant) have steps"),
    ("a step field missing", export(messages=[reply(steps=[{"step": 0}])]),
     "messages[0].steps[0].token_id: missing"),
    ("a probability that is NaN",
     export(messages=[reply(steps=[step_row(stages=[{"name": "raw", "kept": 2, "mass": 1.0,
                                                     "top": [{"id": 7, "p": 0.5},
                                                             {"id": 8, "p": float("nan")}]}])])]),
     "messages[0].steps[0].stages[0].top[1].p: expected a probability (a finite number ≥ 0), "
     "got NaN"),
    ("stages that are not a list", export(messages=[reply(steps=[step_row(stages=3)])]),
     "messages[0].steps[0].stages: expected a list of at most 32 stages, got 3"),
    ("a message that is not an object", export(messages=["hello"]),
     'messages[0]: expected an object, got "hello"'),
    ("messages that are not a list", export(messages={"a": 1}),  # type: ignore[arg-type]
     "messages: expected a list, got an object"),
]


@pytest.mark.parametrize(("data", "said"), [case[1:] for case in HOSTILE],
                         ids=[case[0] for case in HOSTILE])
def test_a_hostile_import_is_refused_naming_the_field_and_stores_nothing(
        store: ConversationStore, data: dict[str, Any], said: str) -> None:
    with pytest.raises(ImportRefused) as refused:
        import_json(store, data)
    assert said in str(refused.value)
    assert str(refused.value).startswith("the export is damaged (")
    assert nothing_stored(store)
    store.create("still works")
    assert [c.title for c in store.list_conversations()] == ["still works"]


def test_every_problem_is_listed_in_one_error(store: ConversationStore) -> None:
    data = export({"updated": 1e20, "mode": "poem"},
                  [reply(steps=[5, None]), {"id": 2, "parent_id": 1, "role": "wizard",
                                            "content": "b", "created": float("inf")}])
    with pytest.raises(ImportRefused) as refused:
        import_json(store, data)
    assert refused.value.total == 6
    assert [p.split(":")[0] for p in refused.value.problems] == [
        "conversation.updated", "conversation.mode", "messages[0].steps[0]",
        "messages[0].steps[1]", "messages[1].role", "messages[1].created"]
    assert nothing_stored(store)


def test_thousands_of_problems_are_counted_and_the_first_listed(
        store: ConversationStore) -> None:
    data = export(messages=[reply(id=i, steps=[i]) for i in range(1, 501)])
    with pytest.raises(ImportRefused) as refused:
        import_json(store, data)
    assert refused.value.total == 500
    assert len(refused.value.problems) == MAX_LISTED
    text = str(refused.value)
    assert text.splitlines()[0] == "the export is damaged (500 problems); nothing was imported:"
    assert "messages[19].steps[0]: expected an object, got 20" in text
    assert "messages[20]" not in text
    assert text.splitlines()[-1].strip() == f"… and {500 - MAX_SHOWN} more"


def test_not_an_export_and_newer_versions_are_refused_in_one_sentence(
        store: ConversationStore) -> None:
    for data, said in (([1, 2], "not an Openlid conversation export"),
                       ({"format": "other"}, "not an Openlid conversation export"),
                       ({**export(), "version": 2}, "written by a newer Openlid")):
        with pytest.raises(StoreError, match=said):
            import_json(store, data)
    assert nothing_stored(store)


def test_a_long_chain_in_any_order_is_rebuilt(store: ConversationStore) -> None:
    n = 5_000  # deeper than Python's recursion limit; parents listed after their children
    messages = [{"id": i, "parent_id": i - 1 if i > 1 else None,
                 "role": "user" if i % 2 else "assistant", "content": f"m{i}"}
                for i in range(n, 0, -1)]
    c = import_json(store, export({"active_leaf_id": n}, messages))
    assert [m.content for m in store.active_path(c.id)] == [f"m{i}" for i in range(1, n + 1)]


def test_a_branch_longer_than_sqlites_trigger_depth_can_be_deleted(
        store: ConversationStore) -> None:
    n = 1_200  # each ON DELETE CASCADE used to recurse into the next: the limit is 1,000
    messages = [{"id": i, "parent_id": i - 1 if i > 1 else None, "role": "user",
                 "content": f"m{i}"} for i in range(1, n + 1)]
    c = import_json(store, export({"active_leaf_id": n}, messages))
    store.delete(c.id)
    assert nothing_stored(store)


def test_unknown_keys_in_step_rows_are_not_stored(store: ConversationStore) -> None:
    row = step_row(junk="x" * 1000)
    row["stages"][0]["extra"] = 1
    row["stages"][0]["top"][0]["more"] = [1, 2]
    c = import_json(store, export(messages=[reply(steps=[row])]))
    (message,) = store.messages(c.id)
    blob = store._conn.execute("SELECT blob FROM message_steps WHERE message_id = ?",
                               (message.id,)).fetchone()[0]
    stored = json.loads(zlib.decompress(blob))
    assert "junk" not in stored
    assert "extra" not in stored["stages"][0]
    assert stored["stages"][0]["top"][0] == {"id": 7, "text": "▁a", "p": 0.6}
    assert store.load_steps(message.id)[0].stages[0].ids == (7, 8)


def test_exported_steps_survive_a_round_trip_exactly(store: ConversationStore,
                                                     tmp_path: Path) -> None:
    c = store.create("round trip")
    store.append(c.id, "user", "Hi")
    answer = store.append(c.id, "assistant", "a b", meta={"completion_tokens": 2,
                                                          "tokens_per_second": 40.5})
    records = [StepRecord(step=k, token_id=-3, text=" a", piece="a", prob=1.0, raw_prob=0.2,
                          raw_rank=0, entropy_raw=0.0, entropy_final=0.0, stages=(),
                          sample_ms=0.25, decode_ms=3.5, replayed=True) for k in range(3)]
    store.save_steps(answer.id, records)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(export_json(store, c.id)), encoding="utf-8")
    checked = read_export_file(path)
    copy = files.insert_import(store, checked)
    new_reply = store.active_path(copy.id)[-1]
    assert store.load_steps(new_reply.id) == records
    assert new_reply.meta == {"completion_tokens": 2, "tokens_per_second": 40.5}


def test_read_export_file_says_what_is_wrong_with_the_file(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    cases = {"notjson.json": (b"{not json", "notjson.json is not JSON"),
             "latin.json": ("{\"é\": 1}".encode("latin-1"), "latin.json is not UTF-8 text"),
             "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
             "list.json": (b"[]", "not an Openlid conversation export")}
    for name, (content, said) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(StoreError, match=said):
            read_export_file(tmp_path / name)
    with pytest.raises(StoreError, match=r"missing\.json cannot be read"):
        read_export_file(tmp_path / "missing.json")
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(export()).encode())
    assert read_export_file(bom).conversation.title == "t"
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 100)
    with pytest.raises(StoreError, match=r"bom\.json is larger than"):
        read_export_file(bom)


# --- the store: linear tree order, its own last checks ---


def test_tree_order_is_parents_first_and_names_orphans_and_loops() -> None:
    ids = [10, 11, 12, 13, 14, 15, 16, 17]
    parents = [None, 10, 10, 11, 99, 16, 15, 15]  # 14: orphan; 15 <-> 16 loop; 17 below it
    tree = tree_order(ids, parents)
    assert [ids[i] for i in tree.order] == [10, 11, 13, 12]
    assert [ids[i] for i in tree.orphans] == [14]
    assert [ids[i] for i in tree.looped] == [15, 16]
    assert not tree.complete
    assert tree_order([1, 2], [None, 1]).complete
    chain = tree_order(list(range(200_000)), [None, *range(199_999)])  # no recursion
    assert chain.order == tuple(range(200_000))


def test_insert_conversation_refuses_values_sqlite_would_not_keep(
        store: ConversationStore) -> None:
    good = Conversation(id=0, title="t", created=1.7e9, updated=1.7e9)
    message = Message(id=1, conversation_id=0, parent_id=None, role="user", content="a",
                      created=1.7e9)
    for conversation, messages, said in (
            (Conversation(id=0, title="t", created=float("nan"), updated=1.7e9), [message],
             "conversation time"),
            (good, [Message(1, 0, None, "user", "a", float("inf"))], "message 1's time"),
            (good, [Message(1, 0, 1, "user", "a", 1.7e9)], "loop"),
            (good, [Message(1, 0, 2, "user", "a", 1.7e9)], "not in the file")):
        with pytest.raises(ValueError, match=said):
            store.insert_conversation(conversation, messages)
    assert nothing_stored(store)
    assert store.insert_conversation(good, [message]).title == "t"


# --- absurd values stored before imports were checked ---


def test_listing_survives_absurd_stored_values(tmp_path: Path) -> None:
    path = tmp_path / "openlid.sqlite3"
    with ConversationStore(path) as store:
        store.create("Normal")
    with sqlite3.connect(path) as conn:
        for title, stamp in (("Huge", 1e20), ("Infinite", float("inf")), ("Text", "garbage"),
                             ("Negative", -1e20)):
            conn.execute("INSERT INTO conversations(title, created, updated, sampler_json)"
                         " VALUES (?, ?, ?, ?)", (title, stamp, stamp, '{"order": [[1]]}'))
    with ConversationStore(path) as store:
        listed = {c.title: c for c in store.list_conversations()}
        assert set(listed) == {"Normal", "Huge", "Infinite", "Text", "Negative"}
        assert listed["Infinite"].updated == float("inf")
        assert listed["Text"].updated != listed["Text"].updated  # NaN: not a time
        assert listed["Huge"].sampler == SamplerSettings()  # unreadable: the defaults
        assert [c.title for c in store.search("Hu")] == ["Huge"]
