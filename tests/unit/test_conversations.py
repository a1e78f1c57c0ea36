"""The conversation store: the message tree (branches, siblings, active path), search,
persistence across reopening, export/import round trips, schema versioning, and that a kill in
the middle of writing leaves the database readable."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.conversations import schema
from desktop.core.conversations.files import export_json, export_markdown, import_json
from desktop.core.conversations.store import (
    SCHEMA_VERSION,
    ConversationStore,
    Message,
    StoreError,
    migrate,
)
from desktop.core.generation import Generation, ModelRef
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StageView, StepRecord
from desktop.core.templates.prompt import build_messages


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "openlid.sqlite3") as s:
        yield s


def contents(messages: list[Message]) -> list[str]:
    return [m.content for m in messages]


def test_create_get_update_rename_delete(store: ConversationStore) -> None:
    sampler = SamplerSettings(temperature=0.3, seed=42, stop=("</s>",))
    c = store.create("First", model_path="/m/gemma.gguf", system_prompt="Be brief.",
                     custom_instructions="I am Al.", template_id="gemma", sampler=sampler)
    assert store.get(c.id) == c
    assert (c.title, c.mode, c.sampler, c.active_leaf_id) == ("First", "chat", sampler, None)
    renamed = store.rename(c.id, "Renamed")
    assert renamed.title == "Renamed"
    assert renamed.updated >= c.updated
    changed = store.update(c.id, mode="completion", sampler=sampler.replace(top_k=5))
    assert (changed.mode, changed.sampler.top_k) == ("completion", 5)
    with pytest.raises(ValueError, match="cannot update"):
        store.update(c.id, id=3)
    store.append(c.id, "user", "hello")
    store.delete(c.id)
    with pytest.raises(KeyError):
        store.get(c.id)
    assert store.list_conversations() == []


def test_append_and_active_path(store: ConversationStore) -> None:
    c = store.create()
    u1 = store.append(c.id, "user", "Hi")
    a1 = store.append(c.id, "assistant", "Hello!", meta={"model": "gemma", "seed": 7,
                                                        "finish_reason": "stop",
                                                        "usage": {"completion_tokens": 2}})
    store.append(c.id, "user", "Bye")
    assert contents(store.active_path(c.id)) == ["Hi", "Hello!", "Bye"]
    assert store.message(a1.id).meta == {"model": "gemma", "seed": 7, "finish_reason": "stop",
                                         "usage": {"completion_tokens": 2}}
    assert store.message(a1.id).parent_id == u1.id
    assert contents(store.active_path(c.id, leaf_id=a1.id)) == ["Hi", "Hello!"]
    # the stored branch is what build_messages lays out for the next turn
    assert build_messages("Sys", "", store.active_path(c.id), "Next")[1:] == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"}, {"role": "user", "content": "Next"}]


def test_edit_makes_a_sibling_branch_and_keeps_the_original(store: ConversationStore) -> None:
    c = store.create()
    u1 = store.append(c.id, "user", "What is 2+2?")
    a1 = store.append(c.id, "assistant", "4")
    u2 = store.append(c.id, "user", "And 3+3?")
    store.append(c.id, "assistant", "6")

    edited = store.edit_message(u2.id, "And 5+5?")
    assert (edited.parent_id, edited.role) == (a1.id, "user")
    assert contents(store.active_path(c.id)) == ["What is 2+2?", "4", "And 5+5?"]
    assert contents(store.siblings(u2.id)) == ["And 3+3?", "And 5+5?"]
    assert store.siblings(edited.id) == store.siblings(u2.id)
    assert store.message(u2.id).content == "And 3+3?"  # the original is kept

    # regenerate: another assistant reply to the same user message
    store.append(c.id, "assistant", "10")
    store.add_message(c.id, "assistant", "ten", parent_id=edited.id)
    assert contents(store.active_path(c.id))[-1] == "ten"
    assert len(store.children(edited.id, c.id)) == 2

    # switch back to the first branch: its newest leaf becomes active
    path = store.select_branch(u2.id)
    assert contents(path) == ["What is 2+2?", "4", "And 3+3?", "6"]
    assert store.get(c.id).active_leaf_id == path[-1].id
    assert contents(store.siblings(u1.id)) == ["What is 2+2?"]
    assert len(store.messages(c.id)) == 7


def test_update_message_in_place(store: ConversationStore) -> None:
    c = store.create()
    store.append(c.id, "user", "Hi")
    reply = store.append(c.id, "assistant", "")
    done = store.update_message(reply.id, content="Hello there", meta={"finish_reason": "stop"})
    assert (done.content, done.meta) == ("Hello there", {"finish_reason": "stop"})
    assert len(store.siblings(reply.id)) == 1


def test_messages_must_stay_in_their_conversation(store: ConversationStore) -> None:
    a, b = store.create("a"), store.create("b")
    m = store.append(a.id, "user", "in a")
    with pytest.raises(ValueError, match="same conversation"):
        store.add_message(b.id, "assistant", "x", parent_id=m.id)
    with pytest.raises(ValueError, match="role"):
        store.append(a.id, "robot", "x")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        store.append(999, "user", "nowhere")


def test_list_and_search(store: ConversationStore) -> None:
    cats = store.create("About cats")
    dogs = store.create("Dogs")
    store.append(dogs.id, "user", "Do dogs like CATS? 100% sure_ly")
    store.create("Nothing")
    assert [c.title for c in store.list_conversations()] == ["Nothing", "Dogs", "About cats"]
    assert {c.id for c in store.search("cats")} == {cats.id, dogs.id}
    assert [c.id for c in store.search("100%")] == [dogs.id]
    assert store.search("0%s") == []  # % and _ are literal, not wildcards
    assert [c.id for c in store.search("sure_ly")] == [dogs.id]
    assert store.search("suresly") == []


def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with ConversationStore(path) as first:
        c = first.create("Kept", system_prompt="Sys")
        first.append(c.id, "user", "Hi")
        first.append(c.id, "assistant", "Hello")
    with ConversationStore(path) as second:
        assert second.get(c.id).title == "Kept"
        assert contents(second.active_path(c.id)) == ["Hi", "Hello"]
        assert second._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_export_import_round_trip(store: ConversationStore, tmp_path: Path) -> None:
    c = store.create("Trip", model_path="m.gguf", system_prompt="S", custom_instructions="I",
                     template_id="custom:x", sampler=SamplerSettings(top_k=3), mode="chat")
    u = store.append(c.id, "user", "Hi ✓")
    store.append(c.id, "assistant", "one", meta={"seed": 1})
    store.add_message(c.id, "assistant", "two", parent_id=u.id, meta={"seed": 2})
    data = export_json(store, c.id)
    text = json.dumps(data, ensure_ascii=False)

    with ConversationStore(tmp_path / "other.sqlite3") as other:
        copy = import_json(other, json.loads(text))
        assert (copy.title, copy.sampler.top_k, copy.template_id) == ("Trip", 3, "custom:x")
        assert contents(other.active_path(copy.id)) == ["Hi ✓", "two"]
        assert sorted(contents(other.messages(copy.id))) == sorted(["Hi ✓", "one", "two"])
        again = export_json(other, copy.id)
    strip_ids = [{k: v for k, v in m.items() if k not in ("id", "parent_id")}
                 for m in data["messages"]]
    assert [{k: v for k, v in m.items() if k not in ("id", "parent_id")}
            for m in again["messages"]] == strip_ids
    assert {k: v for k, v in again["conversation"].items() if k != "active_leaf_id"} == {
        k: v for k, v in data["conversation"].items() if k != "active_leaf_id"}


def test_import_rebuilds_the_tree_whatever_the_order(store: ConversationStore) -> None:
    data = {"format": "openlid-conversation", "version": 1,
            "conversation": {"title": "t", "active_leaf_id": 30},
            "messages": [{"id": 30, "parent_id": 20, "role": "user", "content": "c"},
                         {"id": 10, "parent_id": None, "role": "user", "content": "a"},
                         {"id": 20, "parent_id": 10, "role": "assistant", "content": "b"}]}
    c = import_json(store, data)
    assert contents(store.active_path(c.id)) == ["a", "b", "c"]


@pytest.mark.parametrize("data", [
    {"format": "something-else"},
    {"format": "openlid-conversation", "version": 99, "conversation": {}, "messages": []},
    {"format": "openlid-conversation", "conversation": {}, "messages": [
        {"id": 1, "parent_id": 5, "role": "user", "content": "orphan"}]},
    {"format": "openlid-conversation", "conversation": {}, "messages": [
        {"id": 1, "parent_id": None, "role": "wizard", "content": "x"}]},
    {"format": "openlid-conversation", "conversation": {"mode": "poem"}, "messages": []},
    {"format": "openlid-conversation", "conversation": {}, "messages": [{"no": "id"}]},
])
def test_import_refuses_damaged_exports(store: ConversationStore, data: dict[str, Any]) -> None:
    with pytest.raises(StoreError):
        import_json(store, data)
    assert store.list_conversations() == []  # nothing half-written


def test_markdown_export_shows_the_active_branch(store: ConversationStore) -> None:
    c = store.create("Notes", system_prompt="Be kind.")
    u = store.append(c.id, "user", "Hi")
    store.append(c.id, "assistant", "old")
    store.add_message(c.id, "assistant", "new", parent_id=u.id)
    text = export_markdown(store, c.id)
    assert text.startswith("# Notes\n\n")
    assert "**System prompt:**\n\nBe kind.\n\n" in text
    assert "**Custom instructions:**\n\n*(none)*" in text
    assert text.endswith("## User\n\nHi\n\n## Assistant\n\nnew\n")
    assert "old" not in text


def test_markdown_export_says_the_model_and_each_replys_settings(
        store: ConversationStore) -> None:
    """What a reader needs to reproduce a reply: the conversation's set-up (model, system
    prompt, template, settings) and per reply the settings its Generation stored, which differ
    from the conversation's when they were changed between replies."""
    c = store.create("Tuned", model_path="/m/gemma.gguf", system_prompt="Be brief.",
                     template_id="gemma", sampler=SamplerSettings(temperature=0.3))
    store.append(c.id, "user", "Hi")
    reply = Generation.live(1, SamplerSettings(temperature=1.5, top_k=7, seed=42),
                            model=ModelRef("gemma-3-270m-q4_k_m · google/gemma-3-270m",
                                           "/m/gemma.gguf"), template_id="gemma")
    store.append(c.id, "assistant", "Hello!", meta={**reply.meta(), "finish_reason": "stop"})
    text = export_markdown(store, c.id)
    assert "- **Model file:** `/m/gemma.gguf`" in text
    assert "- **Template:** gemma" in text
    assert "- **Sampling settings:** T 0.30" in text
    assert "**System prompt:**\n\nBe brief." in text
    reply_part = text.split("## Assistant", 1)[1]
    assert "*Model: gemma-3-270m-q4_k_m · google/gemma-3-270m*" in reply_part
    assert "*Sampled with: T 1.50 · top-k 7" in reply_part
    assert "seed 42" in reply_part
    assert "*Finished: stop*" in reply_part
    assert reply_part.rstrip().endswith("Hello!")


def test_schema_version_and_newer_files(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with ConversationStore(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("SELECT version FROM openlid_schema WHERE component = "
                        "'conversations'").fetchone() == (SCHEMA_VERSION,)
    assert migrate(conn) == SCHEMA_VERSION  # running it again changes nothing
    conn.execute("UPDATE openlid_schema SET version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer Openlid"):
        ConversationStore(path)


def test_one_store_per_thread(store: ConversationStore, tmp_path: Path) -> None:
    c = store.create("shared")
    errors: list[BaseException] = []
    titles: list[str] = []

    def elsewhere() -> None:
        try:
            store.get(c.id)
        except sqlite3.ProgrammingError as exc:
            errors.append(exc)
        with ConversationStore(store.path) as own:  # the documented way: one per thread
            titles.append(own.get(c.id).title)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join(10)
    assert len(errors) == 1
    assert titles == ["shared"]


WRITER = """
import sys
from pathlib import Path
from desktop.core.conversations.store import ConversationStore
store = ConversationStore(Path(sys.argv[1]))
c = store.create("busy")
i = 0
while True:
    store.append(c.id, "user", "message %d " % i + "x" * 2000)
    i += 1
    print(i, flush=True)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_during_writes_leaves_a_readable_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=root,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = 0
    for line in proc.stdout:
        committed = int(line)
        if committed >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    with ConversationStore(path) as store:
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (c,) = store.list_conversations()
        path_now = store.active_path(c.id)
        assert len(path_now) >= committed  # every reported commit survived
        assert path_now[0].content.startswith("message 0 ")


# ---- steps of a reply ------------------------------------------------------------------------


def sample_steps(n: int, top_n: int = 40) -> list[StepRecord]:
    """Steps shaped like the engine's: the same candidates recur across stages (the chain
    narrows one list), probabilities are full-precision floats."""
    rng = random.Random(7)
    records = []
    for step in range(n):
        ids = rng.sample(range(262_144), top_n)
        raw = sorted((rng.random() for _ in ids), reverse=True)
        total = sum(raw)
        stages = []
        for k, name in enumerate(("raw", "penalties", "temperature", "top_k", "top_p", "min_p")):
            keep = max(1, top_n - 5 * k)
            mass = sum(raw[:keep])
            stages.append(StageView(name, 262_144 if k == 0 else keep * 3, mass / total,
                                    tuple(ids[:keep]), tuple(p / mass for p in raw[:keep])))
        pieces = {i: f"tok{i % 5000}" for i in ids}
        records.append(StepRecord(
            step=step, token_id=ids[0], text=pieces[ids[0]], piece=pieces[ids[0]],
            prob=stages[-1].probs[0], raw_prob=raw[0] / total, raw_rank=1,
            entropy_raw=rng.random() * 8, entropy_final=rng.random() * 3, stages=tuple(stages),
            pieces=pieces, n_vocab=262_144, position=100 + step, sample_ms=0.25, decode_ms=15.5,
            replayed=step == 3))
    return records


def test_steps_round_trip_compressed(store: ConversationStore, tmp_path: Path) -> None:
    c = store.create("steps")
    reply = store.append(c.id, "assistant", "tok tok tok")
    records = sample_steps(200)
    assert store.load_steps(reply.id) == []
    assert not store.has_steps(reply.id)
    store.save_steps(reply.id, records)
    assert store.has_steps(reply.id)
    loaded = store.load_steps(reply.id)
    assert loaded == records  # every field, the top-N of every stage and their pieces
    assert loaded[0].stage("top_p") == records[0].stage("top_p")
    raw_json = json.dumps([r.to_json() for r in records]).encode()
    with sqlite3.connect(tmp_path / "openlid.sqlite3") as conn:
        (size,) = conn.execute("SELECT length(blob) FROM message_steps WHERE message_id = ?",
                               (reply.id,)).fetchone()
    assert size < len(raw_json) / 2.5  # the per-stage top lists repeat ids and pieces
    store.save_steps(reply.id, records[:5])  # saving again replaces (a continued reply)
    assert store.load_steps(reply.id) == records[:5]
    store.delete(c.id)
    assert not store.has_steps(reply.id)  # gone with its message


def test_migration_from_schema_1_keeps_old_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE openlid_schema (component TEXT PRIMARY KEY, version INTEGER)")
    schema._v1(conn)  # exactly what schema 1 created
    conn.execute("INSERT INTO openlid_schema VALUES ('conversations', 1)")
    conn.execute("INSERT INTO conversations(id, title, created, updated) VALUES (1, 'old', 1, 1)")
    conn.execute("INSERT INTO messages(id, conversation_id, parent_id, role, content, created,"
                 " meta_json) VALUES (1, 1, NULL, 'user', 'hello', 1, NULL),"
                 " (2, 1, 1, 'assistant', 'hi', 2, '{\"seed\": 5}')")
    conn.execute("UPDATE conversations SET active_leaf_id = 2")
    conn.close()
    with ConversationStore(path) as store:
        path_messages = store.active_path(1)
        assert contents(path_messages) == ["hello", "hi"]
        assert path_messages[1].meta == {"seed": 5}
        assert store.get(1).title == "old"
        assert store.load_steps(2) == []
        store.save_steps(2, sample_steps(3))
        assert len(store.load_steps(2)) == 3
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM openlid_schema WHERE component = "
                            "'conversations'").fetchone() == (SCHEMA_VERSION,) == (4,)


def test_foreign_key_checks_use_an_index_so_deleting_a_long_branch_is_linear(
    tmp_path: Path,
) -> None:
    """Deleting or re-parenting a message makes SQLite look for rows that reference it; without
    an index led by the referencing column each look-up scans the table (8,000 messages took 9 s
    to delete; with schema 3's indexes 0.2 s, and 30,000 take 0.6 s)."""
    with ConversationStore(tmp_path / "c.sqlite3") as store:
        conn = store._conn
        for sql in ("SELECT id FROM messages WHERE parent_id = 1",
                    "SELECT id FROM conversations WHERE active_leaf_id = 1"):
            plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert plan.startswith("SEARCH"), plan  # not "SCAN": one look-up, not a pass


def test_export_carries_each_replys_steps_and_import_restores_them(
        store: ConversationStore, tmp_path: Path) -> None:
    c = store.create("with steps")
    u = store.append(c.id, "user", "Hi")
    first = store.append(c.id, "assistant", "one")
    second = store.add_message(c.id, "assistant", "two", parent_id=u.id)
    store.save_steps(first.id, sample_steps(6))
    store.save_steps(second.id, sample_steps(4))
    data = json.loads(json.dumps(export_json(store, c.id)))  # through real JSON text
    assert [len(m.get("steps", [])) for m in data["messages"]] == [0, 6, 4]
    assert "steps" not in export_json(store, c.id, include_steps=False)["messages"][1]

    with ConversationStore(tmp_path / "other.sqlite3") as other:
        copy = import_json(other, data)
        replies = [m for m in other.messages(copy.id) if m.role == "assistant"]
        assert [len(other.load_steps(m.id)) for m in replies] == [6, 4]
        assert other.load_steps(replies[0].id) == sample_steps(6)  # every field survives


def test_import_with_damaged_steps_writes_nothing(store: ConversationStore) -> None:
    data = {"format": "openlid-conversation", "version": 1, "conversation": {"title": "t"},
            "messages": [{"id": 1, "parent_id": None, "role": "assistant", "content": "x",
                          "steps": [{"step": 0}]}]}
    with pytest.raises(StoreError, match="damaged"):
        import_json(store, data)
    assert store.list_conversations() == []
