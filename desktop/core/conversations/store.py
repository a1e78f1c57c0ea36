"""Conversations that persist: each one a tree of messages, stored in SQLite (WAL).

Editing a message or regenerating a reply adds a sibling (same parent) instead of overwriting, so
every version is kept; the conversation's `active_leaf_id` marks the branch being shown and sent,
and `active_path` walks from it back to the root. Assistant messages carry the settings they were
generated with in `meta` (model, template, sampler settings, seed, finish reason, token usage),
and their `StepRecord`s (`save_steps`/`load_steps`: the top-N per stage the records carry, as
zlib-compressed JSON in `message_steps`) so any token can be inspected later. The values and
their encodings are in `conversations.records`; this module is the SQL.

Storage: the app's one SQLite file, shared with other stores; the schema and its versioned
migrations are in `conversations.schema`, run when a store opens the file. Each writing method
is one transaction (BEGIN IMMEDIATE … COMMIT): a crash or kill mid-write loses at most that
write, never older messages, and WAL keeps the file readable.

Threads: a ConversationStore owns one sqlite3 connection and is used only on the thread that
created it (sqlite3 enforces this). Another thread opens its own store on the same path: WAL lets
readers proceed during a write, and a second writer waits up to `busy_timeout` instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from desktop.core.conversations.records import (
    MODES,
    ROLES,
    Conversation,
    EncodedSteps,
    Message,
    Mode,
    Role,
    believable_time,
    conversation_from_row,
    decode_steps,
    dumps,
    encode_steps,
    message_from_row,
    tree_order,
)
from desktop.core.conversations.schema import SCHEMA_VERSION, StoreError, migrate
from desktop.core.database import DatabaseDamaged, connect
from desktop.core.sampling import SamplerSettings
from desktop.core.sqlite_wal import transaction
from desktop.core.steps import StepRecord

__all__ = ["SCHEMA_VERSION", "Conversation", "ConversationStore", "DatabaseDamaged", "Message",
           "StoreError", "migrate"]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConversationStore:
    """Conversations in the SQLite file at `path` (created if missing). One per thread."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        # isolation_level=None: no implicit transactions; every write uses _transaction.
        # DatabaseDamaged when the file is garbage, cut short or has broken pages.
        self._conn = connect(self.path, timeout_s=busy_timeout_s, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives app crashes
            self._conn.execute("PRAGMA foreign_keys=ON")
            migrate(self._conn)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- conversations ---------------------------------------------------------------------

    def create(self, title: str = "New conversation", *, model_path: str = "",
               system_prompt: str = "", custom_instructions: str = "", template_id: str = "",
               sampler: SamplerSettings | None = None, mode: Mode = "chat") -> Conversation:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        now = time.time()
        with transaction(self._conn):
            cur = self._conn.execute(
                "INSERT INTO conversations(title, created, updated, model_path, system_prompt,"
                " custom_instructions, template_id, sampler_json, mode)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (title, now, now, model_path, system_prompt, custom_instructions, template_id,
                 dumps((sampler or SamplerSettings()).to_json()), mode))
        return self.get(int(cur.lastrowid or 0))

    def get(self, conversation_id: int) -> Conversation:
        row = self._conn.execute("SELECT * FROM conversations WHERE id = ?",
                                 (conversation_id,)).fetchone()
        if row is None:
            raise KeyError(f"no conversation {conversation_id}")
        return conversation_from_row(row)

    def list_conversations(self, limit: int = 1000) -> list[Conversation]:
        """Most recently updated first."""
        rows = self._conn.execute(
            "SELECT * FROM conversations ORDER BY updated DESC, id DESC LIMIT ?", (limit,))
        return [conversation_from_row(r) for r in rows]

    def search(self, text: str, limit: int = 200) -> list[Conversation]:
        """Conversations whose title or any message contains `text` (case-insensitive for
        ASCII letters), most recently updated first."""
        pattern = _like(text)
        rows = self._conn.execute(
            "SELECT * FROM conversations c WHERE c.title LIKE ?1 ESCAPE '\\' OR EXISTS ("
            " SELECT 1 FROM messages m WHERE m.conversation_id = c.id"
            " AND m.content LIKE ?1 ESCAPE '\\') ORDER BY c.updated DESC, c.id DESC LIMIT ?2",
            (pattern, limit))
        return [conversation_from_row(r) for r in rows]

    def update(self, conversation_id: int, **changes: Any) -> Conversation:
        """Change title, model_path, system_prompt, custom_instructions, template_id, sampler
        (a SamplerSettings) or mode."""
        columns = {"title", "model_path", "system_prompt", "custom_instructions",
                   "template_id", "mode", "sampler"}
        unknown = set(changes) - columns
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "mode" in changes and changes["mode"] not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        values = dict(changes)
        if "sampler" in values:
            values["sampler_json"] = dumps(values.pop("sampler").to_json())
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            with transaction(self._conn):
                cur = self._conn.execute(
                    f"UPDATE conversations SET {sets}, updated = ? WHERE id = ?",
                    (*values.values(), time.time(), conversation_id))
                if cur.rowcount == 0:
                    raise KeyError(f"no conversation {conversation_id}")
        return self.get(conversation_id)

    def rename(self, conversation_id: int, title: str) -> Conversation:
        return self.update(conversation_id, title=title)

    def delete(self, conversation_id: int) -> None:
        with transaction(self._conn):
            self._conn.execute("UPDATE conversations SET active_leaf_id = NULL WHERE id = ?",
                               (conversation_id,))
            # Cut the tree first: otherwise each message's ON DELETE CASCADE deletes its child,
            # which deletes its own, … and a branch longer than SQLite's trigger depth (1,000)
            # fails with "too many levels of trigger recursion".
            self._conn.execute("UPDATE messages SET parent_id = NULL WHERE conversation_id = ?",
                               (conversation_id,))
            self._conn.execute("DELETE FROM messages WHERE conversation_id = ?",
                               (conversation_id,))
            self._conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # ---- messages --------------------------------------------------------------------------

    def message(self, message_id: int) -> Message:
        row = self._conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise KeyError(f"no message {message_id}")
        return message_from_row(row)

    def _insert(self, conversation_id: int, parent_id: int | None, role: str, content: str,
                meta: Mapping[str, Any] | None) -> int:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if parent_id is not None:
            parent = self.message(parent_id)
            if parent.conversation_id != conversation_id:
                raise ValueError("a message's parent must be in the same conversation")
        now = time.time()
        cur = self._conn.execute(
            "INSERT INTO messages(conversation_id, parent_id, role, content, created, meta_json)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (conversation_id, parent_id, role, content, now,
             dumps(dict(meta)) if meta is not None else None))
        message_id = int(cur.lastrowid or 0)
        cur = self._conn.execute(
            "UPDATE conversations SET active_leaf_id = ?, updated = ? WHERE id = ?",
            (message_id, now, conversation_id))
        if cur.rowcount == 0:
            raise KeyError(f"no conversation {conversation_id}")
        return message_id

    def add_message(self, conversation_id: int, role: Role, content: str, *,
                    parent_id: int | None, meta: Mapping[str, Any] | None = None) -> Message:
        """Add a message under `parent_id` (None: a new root). It becomes the active leaf;
        a parent that already has children gets one more branch (regenerate works this way)."""
        with transaction(self._conn):
            message_id = self._insert(conversation_id, parent_id, role, content, meta)
        return self.message(message_id)

    def append(self, conversation_id: int, role: Role, content: str,
               meta: Mapping[str, Any] | None = None) -> Message:
        """Add a message after the active leaf (the end of the branch being shown)."""
        with transaction(self._conn):
            leaf = self._conn.execute("SELECT active_leaf_id FROM conversations WHERE id = ?",
                                      (conversation_id,)).fetchone()
            if leaf is None:
                raise KeyError(f"no conversation {conversation_id}")
            message_id = self._insert(conversation_id, leaf[0], role, content, meta)
        return self.message(message_id)

    def edit_message(self, message_id: int, content: str,
                     meta: Mapping[str, Any] | None = None) -> Message:
        """Edit by branching: a sibling with the new content; the original stays."""
        original = self.message(message_id)
        return self.add_message(original.conversation_id, original.role, content,
                                parent_id=original.parent_id, meta=meta)

    def update_message(self, message_id: int, *, content: str | None = None,
                       meta: Mapping[str, Any] | None = None) -> Message:
        """Change a message in place (finishing a streamed reply); no branch is made."""
        with transaction(self._conn):
            if content is not None:
                self._conn.execute("UPDATE messages SET content = ? WHERE id = ?",
                                   (content, message_id))
            if meta is not None:
                self._conn.execute("UPDATE messages SET meta_json = ? WHERE id = ?",
                                   (dumps(dict(meta)), message_id))
            self._conn.execute(
                "UPDATE conversations SET updated = ? WHERE id ="
                " (SELECT conversation_id FROM messages WHERE id = ?)", (time.time(), message_id))
        return self.message(message_id)

    def messages(self, conversation_id: int) -> list[Message]:
        """Every message of every branch, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,))
        return [message_from_row(r) for r in rows]

    def children(self, message_id: int | None, conversation_id: int) -> list[Message]:
        rows = self._conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
            (conversation_id, message_id))
        return [message_from_row(r) for r in rows]

    def siblings(self, message_id: int) -> list[Message]:
        """The message and the other versions beside it (same parent), oldest first."""
        message = self.message(message_id)
        return self.children(message.parent_id, message.conversation_id)

    def active_path(self, conversation_id: int, leaf_id: int | None = None) -> list[Message]:
        """Root-to-leaf messages of a branch: the active one unless `leaf_id` is given."""
        if leaf_id is None:
            leaf_id = self.get(conversation_id).active_leaf_id
        path: list[Message] = []
        seen: set[int] = set()
        while leaf_id is not None and leaf_id not in seen:
            seen.add(leaf_id)
            message = self.message(leaf_id)
            if message.conversation_id != conversation_id:
                raise ValueError("message belongs to another conversation")
            path.append(message)
            leaf_id = message.parent_id
        path.reverse()
        return path

    def select_branch(self, message_id: int) -> list[Message]:
        """Show the branch through `message_id` (e.g. a sibling picked with < >): the active
        leaf becomes its newest descendant along the newest children. Returns the new path."""
        message = self.message(message_id)
        leaf = message
        while True:
            kids = self.children(leaf.id, message.conversation_id)
            if not kids:
                break
            leaf = kids[-1]
        with transaction(self._conn):
            self._conn.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                               (leaf.id, message.conversation_id))
        return self.active_path(message.conversation_id)

    # ---- steps of a reply -------------------------------------------------------------------

    def save_steps(self, message_id: int, records: Sequence[StepRecord]) -> None:
        """Keep a reply's StepRecords (replacing any stored before), compressed."""
        blob = encode_steps(records)
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO message_steps(message_id, count, blob) VALUES (?, ?, ?)"
                " ON CONFLICT(message_id) DO UPDATE SET count = excluded.count,"
                " blob = excluded.blob", (message_id, len(records), blob))

    def load_steps(self, message_id: int) -> list[StepRecord]:
        """The StepRecords saved for a message, in step order; [] when none were saved."""
        row = self._conn.execute("SELECT blob FROM message_steps WHERE message_id = ?",
                                 (message_id,)).fetchone()
        if row is None:
            return []
        return decode_steps(row[0], message_id)

    def has_steps(self, message_id: int) -> bool:
        return self._conn.execute("SELECT 1 FROM message_steps WHERE message_id = ?",
                                  (message_id,)).fetchone() is not None

    # ---- whole conversations ---------------------------------------------------------------

    def insert_conversation(self, conversation: Conversation, messages: Sequence[Message],
                            steps: Mapping[int, Sequence[StepRecord] | EncodedSteps] | None = None
                            ) -> Conversation:
        """Add a copy of a conversation and its messages under new ids, in one transaction
        (import uses this). Message ids and parent ids are only used to rebuild the tree;
        parents may come after their children in `messages`. `steps` maps a message id of
        `messages` to its StepRecords (or to them encoded already). ValueError, before anything
        is written, if a value cannot be stored or the tree is broken.

        Linear in the number of messages, and short on the write lock: everything is checked
        and encoded first, then the rows go in with one executemany per table (30,000 messages
        in well under a second), so chat saves from other connections wait little.
        """
        c = conversation
        if c.mode not in MODES:
            raise ValueError(f"unknown mode {c.mode!r}")
        if not (believable_time(c.created) and believable_time(c.updated)):
            raise ValueError("a conversation time is not between 1970 and 3000")
        ids = [m.id for m in messages]
        if len(set(ids)) != len(ids):
            raise ValueError("two messages share an id")
        for m in messages:
            if m.role not in ROLES:
                raise ValueError(f"unknown role {m.role!r}")
            if not believable_time(m.created):
                raise ValueError(f"message {m.id}'s time is not between 1970 and 3000")
        tree = tree_order(ids, [m.parent_id for m in messages])
        if tree.orphans:
            raise ValueError("some messages have a parent that is not in the file")
        if tree.looped or len(tree.order) != len(messages):
            raise ValueError("the messages' parents form a loop")
        encoded = {old_id: s if isinstance(s, EncodedSteps) else EncodedSteps.of(s)
                   for old_id, s in (steps or {}).items()}
        unknown = set(encoded) - set(ids)
        if unknown:
            raise ValueError(f"steps for message {min(unknown)}, which is not in the file")
        ordered = [messages[i] for i in tree.order]
        metas = {m.id: dumps(m.meta) if m.meta is not None else None for m in ordered}
        with transaction(self._conn):
            cur = self._conn.execute(
                "INSERT INTO conversations(title, created, updated, model_path, system_prompt,"
                " custom_instructions, template_id, sampler_json, mode)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.title, c.created, c.updated, c.model_path, c.system_prompt,
                 c.custom_instructions, c.template_id, dumps(c.sampler.to_json()), c.mode))
            conversation_id = int(cur.lastrowid or 0)
            # New ids chosen here (after the largest, as SQLite itself would) so the rows can
            # go in with executemany, parents first for the foreign keys. The write lock is
            # held, so no other connection takes these ids meanwhile.
            base = int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
                       .fetchone()[0])
            new_ids = {m.id: base + 1 + k for k, m in enumerate(ordered)}
            self._conn.executemany(
                "INSERT INTO messages(id, conversation_id, parent_id, role, content, created,"
                " meta_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((new_ids[m.id], conversation_id,
                  None if m.parent_id is None else new_ids[m.parent_id], m.role, m.content,
                  m.created, metas[m.id]) for m in ordered))
            self._conn.executemany(
                "INSERT INTO message_steps(message_id, count, blob) VALUES (?, ?, ?)",
                ((new_ids[old_id], e.count, e.blob) for old_id, e in encoded.items()))
            leaf = c.active_leaf_id
            self._conn.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                               (new_ids.get(leaf) if leaf is not None else None,
                                conversation_id))
        return self.get(conversation_id)
