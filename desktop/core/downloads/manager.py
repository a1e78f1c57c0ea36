"""`DownloadManager`: a persisted queue of downloads, fetched by a bounded set of worker threads.

A job is one file or the files of one model (all shards of a split GGUF, a safetensors unit).
Workers take the next unfinished file of the oldest runnable job, so `concurrency` files move at
once. Each file goes through `attempts.run_file` (disk check, attempts with backoff) and
`fetch.fetch_file` (Range resume into `<name>.part`, sha256 check, atomic rename). The queue
(`downloads.queue`, `downloads.store`) is in SQLite, so after a quit or a crash a
`DownloadManager` on the same database comes back with the same jobs, and the ones that were
running go on from their `.part` files.

Threads: the workers are named `openlid-download-<n>`, started by `start()` and stopped by
`close()` (stop flags → wake → join). Every public method is thread-safe and returns at once
(except `wait` and `close`, which say so). Listeners get an immutable `DownloadsSnapshot`:
on a worker thread for progress (at most once per `progress_interval`, ~1 Hz) and right after
each state change, possibly on the thread that gave a command. A Qt layer must marshal them to
the GUI thread (emit a signal from the listener, delivered by a queued connection) and never
touch widgets in the listener itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import httpx2

from desktop.core.downloads.attempts import (
    DiskSpaceError,
    DownloadError,
    RetryPolicy,
    bytes_to_fetch,
    check_space,
    run_file,
)
from desktop.core.downloads.fetch import FetchTarget
from desktop.core.downloads.progress import DownloadsSnapshot, FileProgress, JobProgress
from desktop.core.downloads.queue import DownloadQueue, Task
from desktop.core.downloads.store import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    JOB_PAUSED,
    DownloadJob,
    JobFile,
    JobStore,
)
from desktop.core.hub.client import ModelFile
from desktop.core.hub.http import resolve_endpoint

__all__ = [
    "DiskSpaceError",
    "DownloadError",
    "DownloadManager",
    "DownloadsSnapshot",
    "FileProgress",
    "JobProgress",
    "RetryPolicy",
]

_log = logging.getLogger(__name__)

Listener = Callable[[DownloadsSnapshot], None]


class DownloadManager:
    """See the module docstring. `db_path`: the SQLite file for the queue; `endpoint` and
    `token` as for HubClient; `policy`: retries, backoff and the disk-space margin."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        concurrency: int = 2,
        endpoint: str | None = None,
        token: str | bool | None = None,
        policy: RetryPolicy | None = None,
        progress_interval: float = 1.0,
        read_timeout: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.endpoint = resolve_endpoint(endpoint)
        self._token = token
        self._concurrency = concurrency
        self._interval = progress_interval
        self._policy = policy or RetryPolicy()
        self._queue = DownloadQueue(JobStore(db_path))
        self._emit_lock = threading.RLock()  # a listener may give a command, which emits
        self._listeners: list[Listener] = []
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._only: frozenset[int] | None = None
        self._last_emit = 0.0
        self._http = httpx2.Client(
            timeout=httpx2.Timeout(read_timeout, connect=15.0),
            follow_redirects=False,
            limits=httpx2.Limits(max_connections=concurrency * 2 + 2),
        )

    # --- lifecycle --------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        with self._emit_lock:
            self._listeners.append(listener)

    def start(self, only: Collection[int] | None = None) -> None:
        """Start the workers; queued jobs (also those restored from the database) begin.
        `only`: run just these jobs and leave the rest of the queue alone (the CLI shares the
        database with the app)."""
        with self._queue.cond:
            if self._threads or self._closing:
                return
            self._only = None if only is None else frozenset(only)
            self._threads = [
                threading.Thread(target=self._work, name=f"openlid-download-{n + 1}",
                                 daemon=True)
                for n in range(self._concurrency)
            ]
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop every transfer (their `.part` files stay, jobs stay queued for the next start)
        and join the workers. Blocks for at most `timeout` seconds."""
        with self._queue.cond:  # one critical section: no task is claimed after this
            if self._closing:
                return
            self._closing = True
            self._queue.stop_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            # A worker stuck in a read that will time out: leave it the client and the store
            # rather than pull them from under it; it exits at its next stop check.
            _log.warning("download workers still running after close(%s s)", timeout)
            return
        self._http.close()
        self._queue.store.close()

    def __enter__(self) -> DownloadManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands ---------------------------------------------------------------------------

    def enqueue(
        self,
        repo_id: str,
        files: Sequence[ModelFile],
        dest_dir: str | Path,
        revision: str | None = None,
    ) -> int:
        """Queue the files of one model; returns the job id. The same unfinished download
        queued again is the same job (resumed), not a second one. Raises DiskSpaceError when
        the disk cannot take the files plus the margin, DownloadError for a bad request."""
        if not files:
            raise DownloadError("nothing to download")
        dest = str(Path(dest_dir).expanduser().resolve())
        job_files = [JobFile(f.path, f.size, f.sha256, f.blob_id) for f in files]
        try:
            for jf in job_files:
                jf.destination(dest)
        except ValueError as exc:
            raise DownloadError(str(exc)) from exc
        rev = revision or "main"
        check_space(Path(dest), bytes_to_fetch(dest, job_files), self._policy.space_margin)
        job_id = self._queue.find(repo_id, rev, dest, [f.path for f in job_files])
        if job_id is not None:
            self._queue.resume(job_id)  # no-op while it is queued or running
        else:
            job_id = self._queue.add(repo_id, rev, dest, job_files)
        self._emit(force=True)
        return job_id

    def pause(self, job_id: int) -> None:
        """Stop a queued or running job; its `.part` files stay for `resume`."""
        if self._queue.halt(job_id, JOB_PAUSED, "pause"):
            self._emit(force=True)

    def resume(self, job_id: int) -> None:
        """Queue a paused, failed or cancelled job again; it goes on from its `.part` files."""
        if self._queue.resume(job_id):
            self._emit(force=True)

    retry = resume

    def cancel(self, job_id: int) -> None:
        """Stop the job and delete its partial files (finished files stay)."""
        if self._queue.halt(job_id, JOB_CANCELLED, "cancel"):
            self._emit(force=True)

    def remove(self, job_id: int) -> None:
        """Forget a job, cancelling it first if unfinished. Finished files stay on disk."""
        job = self._queue.get(job_id)
        if job is None:
            return
        if job.state != JOB_DONE:
            self._queue.halt(job_id, JOB_CANCELLED, "cancel")
        self._queue.remove(job_id)
        self._emit(force=True)

    # --- queries ----------------------------------------------------------------------------

    def jobs(self) -> tuple[DownloadJob, ...]:
        return self._queue.jobs()

    def job(self, job_id: int) -> DownloadJob:
        job = self._queue.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def snapshot(self) -> DownloadsSnapshot:
        return DownloadsSnapshot.of(self._queue.progress())

    def wait(self, job_id: int, timeout: float | None = None) -> DownloadJob:
        """Block until the job is settled (done, paused, failed, cancelled) or `timeout`."""
        return self._queue.wait_settled(job_id, timeout)

    # --- workers ----------------------------------------------------------------------------

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._emit_lock:  # one emitter at a time: listeners see snapshots in order
            if not self._listeners or (not force and now - self._last_emit < self._interval):
                return
            self._last_emit = now
            snap = self.snapshot()
            for listener in self._listeners:
                try:
                    listener(snap)
                except Exception:  # a listener's bug must not fail a download
                    _log.exception("download listener failed")

    def _work(self) -> None:
        queue = self._queue
        while True:
            with queue.cond:
                task = None
                while not self._closing:  # checked after every wake-up, before claiming
                    task = queue.claim(self._only)
                    if task is not None:
                        break
                    queue.cond.wait()
                if task is None:
                    return
            self._emit(force=True)
            try:
                self._run(task)
            except Exception as exc:  # a bug: fail this job, keep the worker and the app alive
                _log.exception("download worker failed")
                queue.fail(task, JOB_FAILED, f"Unexpected error: {exc}")
            finally:
                queue.release(task)
                self._emit(force=True)

    def _run(self, task: Task) -> None:
        job = self._queue.get(task.job_id)
        if job is None:
            return
        jf = job.files[task.index]
        target = FetchTarget(job.repo_id, job.revision, jf.path, jf.destination(job.dest_dir),
                             jf.size, jf.sha256, jf.blob_id)

        def on_offset(offset: int) -> None:
            self._queue.advance(task, offset)
            self._emit()

        outcome = run_file(
            self._http, self.endpoint, self._token, target, task.stop, self._policy,
            on_offset, lambda phase: self._queue.set_phase(task, phase),
        )
        if outcome.state == JOB_DONE:
            self._queue.file_done(task)
        elif outcome.state:
            self._queue.fail(task, outcome.state, outcome.message)
