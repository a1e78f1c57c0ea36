"""The SQLite schema of the conversation store and its migrations.

The database file is the app's one database, shared with other stores, so the schema version
lives in a row of `openlid_schema` keyed by component ("conversations") rather than in the
file-wide `PRAGMA user_version`, which two stores could not share. `migrate` runs the steps from
the stored version to `SCHEMA_VERSION` in one transaction, and refuses a file written by a newer
Openlid. Runs on the thread that owns the connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from desktop.core.sqlite_wal import transaction

SCHEMA_VERSION = 4
COMPONENT = "conversations"


class StoreError(Exception):
    """The database or an imported file cannot be used; `str()` says why."""


def _v1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            model_path TEXT NOT NULL DEFAULT '',
            system_prompt TEXT NOT NULL DEFAULT '',
            custom_instructions TEXT NOT NULL DEFAULT '',
            template_id TEXT NOT NULL DEFAULT '',
            sampler_json TEXT NOT NULL DEFAULT '{}',
            mode TEXT NOT NULL DEFAULT 'chat' CHECK (mode IN ('chat', 'completion')),
            active_leaf_id INTEGER REFERENCES messages(id) ON DELETE SET NULL
        )""")
    conn.execute("""
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            created REAL NOT NULL,
            meta_json TEXT
        )""")
    conn.execute("CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id)")
    conn.execute("CREATE INDEX conversations_by_updated ON conversations(updated DESC)")


def _v2(conn: sqlite3.Connection) -> None:
    # A reply's StepRecords, one zlib-compressed JSON array per message (see
    # ConversationStore.save_steps). Apart from `messages` so listing a branch never reads them.
    conn.execute("""
        CREATE TABLE message_steps (
            message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
            count INTEGER NOT NULL,
            blob BLOB NOT NULL
        )""")


def _v3(conn: sqlite3.Connection) -> None:
    # Foreign-key checks look rows up by the child column: deleting or re-parenting a message
    # searches messages.parent_id and conversations.active_leaf_id for it. messages_by_parent
    # leads with conversation_id, so without these each check scanned the table and deleting a
    # conversation of n messages took n scans (8,000 messages: 9 s on the database thread).
    conn.execute("CREATE INDEX messages_by_parent_id ON messages(parent_id)")
    conn.execute("CREATE INDEX conversations_by_active_leaf ON conversations(active_leaf_id)")


def _v4(conn: sqlite3.Connection) -> None:
    # Tool results are messages of their own (role "tool"). SQLite cannot alter a CHECK
    # constraint, so `messages` is rebuilt: a new table, every row copied with its id, the old
    # one dropped, the new one renamed. `migrate` turns foreign keys off around the transaction
    # (dropping the old table would otherwise cascade into message_steps and clear every
    # conversation's active leaf) and checks them before it commits.
    conn.execute("""
        CREATE TABLE messages_v4 (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
            content TEXT NOT NULL,
            created REAL NOT NULL,
            meta_json TEXT
        )""")
    conn.execute(
        "INSERT INTO messages_v4(id, conversation_id, parent_id, role, content, created,"
        " meta_json) SELECT id, conversation_id, parent_id, role, content, created,"
        " meta_json FROM messages"
    )
    conn.execute("DROP TABLE messages")
    conn.execute("ALTER TABLE messages_v4 RENAME TO messages")
    conn.execute("CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id)")
    conn.execute("CREATE INDEX messages_by_parent_id ON messages(parent_id)")


# _MIGRATIONS[n] takes the schema from version n to n + 1; append, never edit, released steps.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4)
_REBUILDS = frozenset({3})  # steps (by their starting version) that rebuild a table


def migrate(conn: sqlite3.Connection) -> int:
    """Create or upgrade the conversation tables; returns the schema version now in place.

    Foreign keys are off while the steps run (a table rebuild must not cascade), as SQLite's
    own procedure asks; they are checked before the commit and turned back on after it."""
    keys_on = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    if keys_on:
        conn.execute("PRAGMA foreign_keys=OFF")  # outside the transaction, or it is a no-op
    try:
        return _migrate(conn)
    finally:
        if keys_on:
            conn.execute("PRAGMA foreign_keys=ON")


def _migrate(conn: sqlite3.Connection) -> int:
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS openlid_schema ("
            "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM openlid_schema WHERE component = ?", (COMPONENT,)
        ).fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the conversation database was written by a newer Openlid "
                f"(schema {version}, this version reads up to {SCHEMA_VERSION})"
            )
        for step in _MIGRATIONS[version:]:
            step(conn)
        if version and _REBUILDS.intersection(range(version, SCHEMA_VERSION)):
            broken = conn.execute("PRAGMA foreign_key_check").fetchone()
            if broken is not None:
                raise StoreError(
                    f"the conversation database could not be upgraded: a row of "
                    f"{broken[0]} points at a missing {broken[2]} row"
                )
        conn.execute(
            "INSERT INTO openlid_schema(component, version) VALUES (?, ?) "
            "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
            (COMPONENT, SCHEMA_VERSION),
        )
    return SCHEMA_VERSION
