"""Images attached to chat messages, stored with the conversation in the app's SQLite file.

One row per image: the message it belongs to, its place among that message's images, its file
name and its encoded bytes (PNG/JPEG/WebP as attached; the engine's projector reads them). The
table is this module's own (`CREATE TABLE IF NOT EXISTS`, no migration of the conversations
schema needed) and carries no foreign key: a messages-table rebuild in a later migration must not
cascade into it. Instead a trigger on `messages` (made when an ImageStore opens the file and the
messages table exists) deletes a message's images with it — a conversation deleted, a branch
or a message deleted — and SQLite drops triggers before a table rebuild's DROP, so a rebuild
never fires it. Images orphaned before the trigger existed are dropped by `prune`, run once when
the trigger is made.

Threads: an ImageStore owns one sqlite3 connection and is used on the thread that created it,
like `ConversationStore` (the chat's database thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from desktop.core.database import connect
from desktop.core.sqlite_wal import transaction
from desktop.core.vision import IMAGE_MARKER

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message_images (
    message_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (message_id, position)
)"""
_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS message_images_removed AFTER DELETE ON messages BEGIN
    DELETE FROM message_images WHERE message_id = old.id;
END"""


@dataclass(frozen=True)
class StoredImage:
    name: str  # the file name it was attached as ("pasted image.png" for a paste)
    data: bytes


class ImageStore:
    """The images of messages in the SQLite file at `path`. One per thread."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self._conn = connect(Path(path), timeout_s=busy_timeout_s, isolation_level=None)
        try:
            self._conn.execute(_SCHEMA)
            self._add_trigger()
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_trigger(self) -> None:
        """The trigger that deletes a message's images with it, once the messages table
        exists; images left by messages deleted before it existed are dropped then."""
        present = {str(r[0]) for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('messages', 'message_images_removed')")}
        if "messages" in present and "message_images_removed" not in present:
            with transaction(self._conn) as conn:
                conn.execute(_TRIGGER)
                conn.execute("DELETE FROM message_images "
                             "WHERE message_id NOT IN (SELECT id FROM messages)")

    def save(self, message_id: int, images: Sequence[StoredImage]) -> None:
        """Make `images` the message's images, in order (replacing any it had)."""
        with transaction(self._conn) as conn:
            conn.execute("DELETE FROM message_images WHERE message_id = ?", (message_id,))
            conn.executemany(
                "INSERT INTO message_images (message_id, position, name, data) VALUES (?, ?, ?, ?)",
                [(message_id, i, im.name, sqlite3.Binary(im.data)) for i, im in enumerate(images)],
            )

    def load(self, message_id: int) -> list[StoredImage]:
        return self.load_many((message_id,)).get(message_id, [])

    def load_many(self, message_ids: Iterable[int]) -> dict[int, list[StoredImage]]:
        """The images of each message that has any, in order."""
        ids = list(dict.fromkeys(message_ids))
        out: dict[int, list[StoredImage]] = {}
        for start in range(0, len(ids), 500):  # below SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT message_id, name, data FROM message_images "
                f"WHERE message_id IN ({marks}) ORDER BY message_id, position",
                chunk,
            )
            for message_id, name, data in rows:
                out.setdefault(int(message_id), []).append(StoredImage(str(name), bytes(data)))
        return out

    def copy(self, from_message: int, to_message: int) -> None:
        """Give an edited message's new version the images of the old one."""
        self.save(to_message, self.load(from_message))

    def prune(self) -> int:
        """Drop the images of messages that no longer exist; returns how many went."""
        has_messages = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchone()
        if not has_messages:
            return 0
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "DELETE FROM message_images WHERE message_id NOT IN (SELECT id FROM messages)"
            )
            return int(cur.rowcount)


def with_markers(content: str, n_images: int) -> str:
    """A message's content as the template sees it: one image marker per image, before the
    text (where llama-server puts an OpenAI message's image parts)."""
    return f"{IMAGE_MARKER * n_images}\n{content}" if n_images else content


def images_sent(
    pieces: Sequence[tuple[str, bool]], branch_images: Sequence[bytes]
) -> tuple[bytes, ...]:
    """The images a rendered prompt carries, in order: one per marker left in it. The overflow
    policy drops the oldest turns first, so the markers that remain are the last images'."""
    n = sum(text.count(IMAGE_MARKER) for text, _ in pieces)
    return tuple(branch_images[len(branch_images) - n :]) if n else ()


def branch_images(
    db_path: Path, message_ids: Sequence[int | None]
) -> tuple[dict[int, int], list[bytes]]:
    """For a branch's messages: how many images each has, and all their bytes in order."""
    ids = [i for i in message_ids if i is not None]
    if not ids:
        return {}, []
    with ImageStore(db_path) as store:
        found = store.load_many(ids)
    counts = {i: len(found[i]) for i in ids if i in found}
    return counts, [im.data for i in ids for im in found.get(i, [])]
