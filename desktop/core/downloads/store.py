"""The download queue on disk: `DownloadJob` values and the SQLite tables that keep them across
restarts (and crashes) of the app.

Only state transitions are written (queued, paused, a file finished …), never progress: the
bytes already fetched are the length of each `<file>.part`, which survives a SIGKILL by itself.
The tables live in the caller's database file (the app keeps conversations, jobs and models in
one file) beside other tables, in WAL mode so that readers in other threads or processes do not
block the writer.

`JobStore` serialises its own access with a lock, so the manager's worker threads and the
caller's thread may share one instance.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from desktop.core.database import connect

__all__ = [
    "JOB_CANCELLED",
    "JOB_DONE",
    "JOB_DOWNLOADING",
    "JOB_FAILED",
    "JOB_PAUSED",
    "JOB_QUEUED",
    "JOB_STATES",
    "SETTLED_STATES",
    "DownloadJob",
    "JobFile",
    "JobStore",
    "safe_destination",
]

JOB_QUEUED = "queued"
JOB_DOWNLOADING = "downloading"
JOB_PAUSED = "paused"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_DONE = "done"
JOB_STATES = (JOB_QUEUED, JOB_DOWNLOADING, JOB_PAUSED, JOB_FAILED, JOB_CANCELLED, JOB_DONE)
# States a job stays in until someone acts: nothing more happens by itself.
SETTLED_STATES = frozenset({JOB_PAUSED, JOB_FAILED, JOB_CANCELLED, JOB_DONE})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS download_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id TEXT NOT NULL,
    revision TEXT NOT NULL,
    dest_dir TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS download_files (
    job_id INTEGER NOT NULL REFERENCES download_jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    blob_id TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
);
"""


def safe_destination(dest_dir: str | Path, repo_path: str) -> Path:
    """Where a repo file lands: `dest_dir/repo_path`, refusing names that would escape the
    folder (a hostile or broken listing with `..` or an absolute path)."""
    parts = PurePosixPath(repo_path).parts
    if not parts or repo_path.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"refusing the file name {repo_path!r}: it leaves the download folder")
    if any("\\" in p or ":" in p for p in parts):
        raise ValueError(f"refusing the file name {repo_path!r}: not a portable file name")
    return Path(dest_dir).joinpath(*parts)


@dataclass(frozen=True)
class JobFile:
    """One file of a job. `sha256` (LFS) or `blob_id` (git blob sha1 of a small file) is what
    the bytes are verified against; `done` means verified and moved to its final name."""

    path: str
    size: int | None
    sha256: str | None = None
    blob_id: str | None = None
    done: bool = False

    def destination(self, dest_dir: str | Path) -> Path:
        return safe_destination(dest_dir, self.path)


@dataclass(frozen=True)
class DownloadJob:
    """One download: a file, or the files of one model (all shards, or a safetensors unit)."""

    id: int
    repo_id: str
    revision: str  # a commit sha when known, so that the bytes match the recorded hashes
    dest_dir: str
    files: tuple[JobFile, ...]
    state: str = JOB_QUEUED
    message: str = ""  # why it is paused or failed, in plain words
    created: float = 0.0

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    @property
    def settled(self) -> bool:
        return self.state in SETTLED_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "repo_id": self.repo_id, "revision": self.revision,
            "dest_dir": self.dest_dir, "state": self.state, "message": self.message,
            "created": self.created, "size": self.size,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "blob_id": f.blob_id,
                 "done": f.done} for f in self.files
            ],
        }


class JobStore:
    """The download tables in one SQLite file. Thread-safe (one connection behind a lock)."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock, not the creating thread, guards the connection.
        # isolation_level DEFERRED: sqlite3's implicit transactions, committed by `with self._db`.
        # DatabaseDamaged when the file is garbage, cut short or has broken pages.
        self._db = connect(self.path, timeout_s=10.0, isolation_level="DEFERRED",
                           check_same_thread=False)
        try:
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._tx() as db:
                db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    def load(self) -> list[DownloadJob]:
        with self._tx() as db:
            jobs = db.execute(
                "SELECT id, repo_id, revision, dest_dir, state, message, created "
                "FROM download_jobs ORDER BY id"
            ).fetchall()
            files = db.execute(
                "SELECT job_id, path, size, sha256, blob_id, done FROM download_files "
                "ORDER BY job_id, idx"
            ).fetchall()
        by_job: dict[int, list[JobFile]] = {}
        for job_id, path, size, sha256, blob_id, done in files:
            by_job.setdefault(job_id, []).append(JobFile(path, size, sha256, blob_id, bool(done)))
        return [
            DownloadJob(jid, repo, rev, dest, tuple(by_job.get(jid, ())), state, msg, created)
            for jid, repo, rev, dest, state, msg, created in jobs
        ]

    def insert(
        self, repo_id: str, revision: str, dest_dir: str, files: Sequence[JobFile]
    ) -> DownloadJob:
        created = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO download_jobs (repo_id, revision, dest_dir, state, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (repo_id, revision, dest_dir, JOB_QUEUED, created),
            )
            job_id = cur.lastrowid
            assert job_id is not None
            db.executemany(
                "INSERT INTO download_files (job_id, idx, path, size, sha256, blob_id, done) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(job_id, i, f.path, f.size, f.sha256, f.blob_id, int(f.done))
                 for i, f in enumerate(files)],
            )
        return DownloadJob(job_id, repo_id, revision, dest_dir, tuple(files), JOB_QUEUED, "",
                           created)

    def set_state(self, job: DownloadJob, state: str, message: str = "") -> DownloadJob:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._tx() as db:
            db.execute("UPDATE download_jobs SET state = ?, message = ? WHERE id = ?",
                       (state, message, job.id))
        return replace(job, state=state, message=message)

    def set_file_done(self, job: DownloadJob, index: int, done: bool = True) -> DownloadJob:
        with self._tx() as db:
            db.execute("UPDATE download_files SET done = ? WHERE job_id = ? AND idx = ?",
                       (int(done), job.id, index))
        files = list(job.files)
        files[index] = replace(files[index], done=done)
        return replace(job, files=tuple(files))

    def delete(self, job_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM download_jobs WHERE id = ?", (job_id,))
