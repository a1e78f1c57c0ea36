"""The download queue's state machine: which jobs exist, which file each worker holds, how far
each `.part` has grown, and every state change written through to SQLite (`JobStore`).

No threads and no network here: `DownloadManager` owns the workers and calls in. All state sits
behind one Condition (`cond`), which the manager also waits on; every method takes it itself,
so any thread may call any method.

States: queued → downloading → done, with paused / failed / cancelled on the side. A user's
command wins over a worker's verdict: a worker that fails a file after the user paused its job
leaves the job paused.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from desktop.core.downloads.fetch import part_path
from desktop.core.downloads.progress import FileProgress, JobProgress, SpeedMeter
from desktop.core.downloads.store import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_DOWNLOADING,
    JOB_FAILED,
    JOB_PAUSED,
    JOB_QUEUED,
    DownloadJob,
    JobFile,
    JobStore,
)

__all__ = ["RUNNABLE", "DownloadQueue", "Task"]

RUNNABLE = (JOB_QUEUED, JOB_DOWNLOADING)
_RESUMABLE = (JOB_PAUSED, JOB_FAILED, JOB_CANCELLED)


@dataclass
class Task:
    """A file held by one worker. `offset` and `phase` are written by that worker (under the
    queue's lock); `reason` says who set `stop`: "pause", "cancel", "fail" or "close"."""

    job_id: int
    index: int
    part: Path
    stop: threading.Event
    offset: int = 0
    reason: str = ""
    phase: str = "starting"


def _discard(part: Path) -> None:
    with contextlib.suppress(OSError):  # gone already, or its folder is
        part.unlink(missing_ok=True)


class DownloadQueue:
    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.cond = threading.Condition(threading.RLock())  # the manager nests calls in it
        self._jobs: dict[int, DownloadJob] = {}
        self._tasks: dict[tuple[int, int], Task] = {}
        self._offsets: dict[tuple[int, int], int] = {}  # .part lengths of files not held
        self._meters: dict[int, SpeedMeter] = {}
        for job in store.load():
            if job.state == JOB_DOWNLOADING:  # interrupted by a quit or a crash: go on
                job = store.set_state(job, JOB_QUEUED)
            self._jobs[job.id] = job
            self._measure_parts(job)

    def _measure_parts(self, job: DownloadJob) -> None:
        for i, f in enumerate(job.files):
            if not f.done:
                try:
                    size = part_path(f.destination(job.dest_dir)).stat().st_size
                except (OSError, ValueError):
                    size = 0
                self._offsets[(job.id, i)] = size

    def _put(self, job: DownloadJob, state: str, message: str = "") -> None:
        if job.state != state or job.message != message:
            self._jobs[job.id] = self.store.set_state(job, state, message)
        self.cond.notify_all()

    # --- queries ----------------------------------------------------------------------------

    def jobs(self) -> tuple[DownloadJob, ...]:
        with self.cond:
            return tuple(self._jobs[k] for k in sorted(self._jobs))

    def get(self, job_id: int) -> DownloadJob | None:
        with self.cond:
            return self._jobs.get(job_id)

    def find(self, repo_id: str, revision: str, dest: str, paths: Sequence[str]) -> int | None:
        """An unfinished job for the same files into the same folder."""
        want = sorted(paths)
        with self.cond:
            for job in self._jobs.values():
                if (job.repo_id, job.revision, job.dest_dir) == (repo_id, revision, dest) \
                        and job.state != JOB_DONE and sorted(f.path for f in job.files) == want:
                    return job.id
        return None

    def progress(self) -> tuple[JobProgress, ...]:
        now = time.monotonic()
        with self.cond:
            return tuple(self._progress(self._jobs[k], now) for k in sorted(self._jobs))

    def _progress(self, job: DownloadJob, now: float) -> JobProgress:
        files = []
        for i, f in enumerate(job.files):
            task = self._tasks.get((job.id, i))
            if f.done:
                files.append(FileProgress(f.path, f.size, f.size or 0, "done"))
            elif task is not None:
                files.append(FileProgress(f.path, f.size, task.offset, task.phase))
            else:
                offset = self._offsets.get((job.id, i), 0)
                files.append(FileProgress(f.path, f.size, offset, "waiting"))
        meter = self._meters.get(job.id)
        speed = meter.speed(now) if meter is not None and job.state == JOB_DOWNLOADING else 0.0
        return JobProgress.of(job, tuple(files), speed)

    def wait_settled(self, job_id: int, timeout: float | None) -> DownloadJob:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self._jobs[job_id].settled:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.cond.wait(left)
            return self._jobs[job_id]

    # --- commands ---------------------------------------------------------------------------

    def add(self, repo_id: str, revision: str, dest: str, files: Sequence[JobFile]) -> int:
        job = self.store.insert(repo_id, revision, dest, files)
        with self.cond:
            self._jobs[job.id] = job
            self._measure_parts(job)
            self.cond.notify_all()
        return job.id

    def resume(self, job_id: int) -> bool:
        with self.cond:
            job = self._jobs.get(job_id)
            if job is None or job.state not in _RESUMABLE:
                return False
            self._put(job, JOB_QUEUED)
            return True

    def halt(self, job_id: int, state: str, reason: str) -> bool:
        """Pause (from queued/running) or cancel (from anything unfinished) a job, stopping its
        tasks; a cancel also deletes the `.part` files no worker holds (workers delete theirs
        as they stop)."""
        allowed = RUNNABLE if state == JOB_PAUSED else (*RUNNABLE, *_RESUMABLE)
        with self.cond:
            job = self._jobs.get(job_id)
            if job is None or job.state not in allowed:
                return False
            for (jid, _), task in self._tasks.items():
                if jid == job_id:
                    task.reason = reason
                    task.stop.set()
            self._put(job, state)
            if state == JOB_CANCELLED:
                for i, f in enumerate(job.files):
                    if not f.done and (job_id, i) not in self._tasks:
                        _discard(part_path(f.destination(job.dest_dir)))
                        self._offsets[(job_id, i)] = 0
            return True

    def remove(self, job_id: int) -> None:
        with self.cond:
            if self._jobs.pop(job_id, None) is not None:
                self._meters.pop(job_id, None)
                self.store.delete(job_id)
            self.cond.notify_all()

    def stop_all(self) -> None:
        with self.cond:
            for task in self._tasks.values():
                task.reason = "close"
                task.stop.set()
            self.cond.notify_all()

    # --- the workers' side ------------------------------------------------------------------

    def claim(self, only: frozenset[int] | None = None) -> Task | None:
        """The next file to fetch: the first unheld, unfinished file of the oldest runnable job
        (among `only`, if given). Call with `cond` held (the manager waits on it)."""
        # Two jobs may name the same file (same repo, other revision): one writer per .part.
        busy = {t.part for t in self._tasks.values()}
        for job_id in sorted(self._jobs):
            job = self._jobs[job_id]
            if job.state not in RUNNABLE or (only is not None and job_id not in only):
                continue
            for i, f in enumerate(job.files):
                key = (job_id, i)
                part = part_path(f.destination(job.dest_dir))
                if f.done or key in self._tasks or part in busy:
                    continue
                task = Task(job_id, i, part, threading.Event(), self._offsets.get(key, 0))
                self._tasks[key] = task
                self._put(job, JOB_DOWNLOADING)
                return task
        return None

    def advance(self, task: Task, offset: int) -> None:
        with self.cond:
            meter = self._meters.setdefault(task.job_id, SpeedMeter())
            meter.add(time.monotonic(), max(0, offset - task.offset))
            task.offset = offset
            task.phase = "downloading"

    def set_phase(self, task: Task, phase: str) -> None:
        with self.cond:
            task.phase = phase

    def file_done(self, task: Task) -> None:
        with self.cond:
            job = self._jobs.get(task.job_id)
            if job is None:
                return
            job = self.store.set_file_done(job, task.index)
            self._jobs[job.id] = job
            task.offset = job.files[task.index].size or task.offset
            if all(f.done for f in job.files):
                self._put(job, JOB_DONE)
            self.cond.notify_all()

    def fail(self, task: Task, state: str, message: str) -> None:
        """A worker's verdict on its job: JOB_PAUSED or JOB_FAILED with a message."""
        with self.cond:
            job = self._jobs.get(task.job_id)
            if job is None or job.state not in RUNNABLE:
                return  # paused or cancelled meanwhile: the user's command wins
            for (jid, idx), other in self._tasks.items():
                if jid == task.job_id and idx != task.index:
                    other.reason = "fail"
                    other.stop.set()
            self._put(job, state, message)

    def release(self, task: Task) -> None:
        with self.cond:
            if task.reason == "cancel":
                _discard(task.part)
                task.offset = 0
            self._tasks.pop((task.job_id, task.index), None)
            self._offsets[(task.job_id, task.index)] = task.offset
            self.cond.notify_all()
