"""The conversation schema's v4 step: `messages` rebuilt to take role "tool", on a real SQLite
file written by the old (v3) schema, every row, step and active leaf kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from desktop.core.conversations import schema
from desktop.core.conversations.files import export_json, import_json
from desktop.core.conversations.store import ConversationStore
from desktop.core.steps import StageView, StepRecord


def _old_database(path: Path) -> None:
    """A file as Openlid wrote it before tool messages: schema 3, with a conversation of three
    messages on two branches, a reply's steps and the active leaf set."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("BEGIN")
    for step in schema._MIGRATIONS[:3]:
        step(conn)
    conn.execute(
        "CREATE TABLE openlid_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO openlid_schema VALUES ('conversations', 3)")
    conn.execute(
        "INSERT INTO conversations(id, title, created, updated) VALUES (1, 'kept', 1.0, 2.0)"
    )
    conn.execute("INSERT INTO messages VALUES (10, 1, NULL, 'user', 'hello', 1.0, NULL)")
    conn.execute(
        "INSERT INTO messages VALUES (11, 1, 10, 'assistant', 'first', 1.5, "
        '\'{"model_name":"m"}\')'
    )
    conn.execute("INSERT INTO messages VALUES (12, 1, 10, 'assistant', 'second', 1.6, NULL)")
    conn.execute("UPDATE conversations SET active_leaf_id = 12 WHERE id = 1")
    conn.execute("INSERT INTO message_steps VALUES (11, 1, x'00')")
    conn.execute("COMMIT")
    with pytest.raises(sqlite3.IntegrityError):  # the old schema refuses tool messages
        conn.execute("INSERT INTO messages VALUES (13, 1, 12, 'tool', 'r', 1.7, NULL)")
    conn.close()


def test_old_database_is_rebuilt_with_every_row_kept(tmp_path: Path) -> None:
    path = tmp_path / "openlid.sqlite3"
    _old_database(path)
    with ConversationStore(path) as store:
        assert store.get(1).active_leaf_id == 12
        assert [(m.id, m.parent_id, m.role, m.content) for m in store.messages(1)] == [
            (10, None, "user", "hello"),
            (11, 10, "assistant", "first"),
            (12, 10, "assistant", "second"),
        ]
        assert store.message(11).meta == {"model_name": "m"}
        assert store.has_steps(11)
        tool = store.append(1, "tool", "42", meta={"tool_call_id": "c1", "name": "add"})
        assert [m.role for m in store.active_path(1)] == ["user", "assistant", "tool"]
        assert store.message(tool.id).to_chat() == {
            "role": "tool",
            "content": "42",
            "tool_call_id": "c1",
            "name": "add",
        }
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM openlid_schema").fetchone() == (schema.SCHEMA_VERSION,)
    # The rebuilt table still cascades: foreign keys point at it, not at a table now gone.
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name='conversations'").fetchone()[0]
    assert "REFERENCES messages(id)" in sql
    conn.close()
    with ConversationStore(path) as store:  # opened again: nothing to migrate, nothing lost
        store.delete(1)
        assert store.list_conversations() == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM message_steps").fetchone() == (0,)
    conn.close()


def test_a_failed_upgrade_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "openlid.sqlite3"
    _old_database(path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("DROP TABLE messages")
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(schema, "_MIGRATIONS", (*schema._MIGRATIONS[:3], broken))
    with pytest.raises(sqlite3.OperationalError, match="disk full"):
        ConversationStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM messages").fetchone() == (3,)
    assert conn.execute("SELECT version FROM openlid_schema").fetchone() == (3,)
    conn.close()


def test_tool_messages_round_trip_through_export(tmp_path: Path) -> None:
    with ConversationStore(tmp_path / "a.sqlite3") as store:
        c = store.create("tools")
        store.append(c.id, "user", "add 2 and 3")
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
        }
        reply = store.append(
            c.id,
            "assistant",
            '<tool_call>{"name": "add"}</tool_call>',
            meta={"tool_calls": [call], "tool_content": ""},
        )
        store.save_steps(
            reply.id,
            [
                StepRecord(
                    step=0,
                    token_id=1,
                    text="x",
                    piece="x",
                    prob=1.0,
                    raw_prob=1.0,
                    raw_rank=1,
                    entropy_raw=0.0,
                    entropy_final=0.0,
                    stages=(StageView("raw", 2, 1.0, (1,), (1.0,)),),
                    pieces={1: "x"},
                )
            ],
        )
        store.append(c.id, "tool", "5", meta={"tool_call_id": "call_1", "name": "add"})
        data = export_json(store, c.id)
        copy = import_json(store, data)
        chats = [m.to_chat() for m in store.active_path(copy.id)]
    assert [m["role"] for m in chats] == ["user", "assistant", "tool"]
    assert chats[1]["tool_calls"] == [call]
    assert chats[2]["tool_call_id"] == "call_1"
