"""Progress values of the download queue: immutable snapshots for listeners, the speed meter
behind them, and byte/time formatting for people.

Snapshots are frozen dataclasses holding tuples, so a listener on any thread may keep them.
`SpeedMeter` is not thread-safe by itself; `DownloadManager` uses it under its lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from desktop.core.downloads.store import DownloadJob

__all__ = [
    "DownloadsSnapshot",
    "FileProgress",
    "JobProgress",
    "SpeedMeter",
    "format_duration",
    "format_size",
]

_WINDOW_S = 5.0  # speed is averaged over this much recent time: steady, yet quick to follow


def format_size(n: float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop returns at GiB


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class SpeedMeter:
    """Bytes per second over the last few seconds, from (time, bytes) samples."""

    def __init__(self, window: float = _WINDOW_S) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, now: float, n: int) -> None:
        self._samples.append((now, n))
        self._total += n
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._samples and now - self._samples[0][0] > self._window:
            self._total -= self._samples.popleft()[1]

    def speed(self, now: float) -> float:
        self._trim(now)
        if not self._samples:
            return 0.0
        span = max(now - self._samples[0][0], 0.5)  # one burst is not an infinite speed
        return self._total / span


@dataclass(frozen=True)
class FileProgress:
    path: str
    size: int | None
    done_bytes: int
    phase: str  # "waiting", "starting", "verifying", "downloading", "retrying", "done"


@dataclass(frozen=True)
class JobProgress:
    job: DownloadJob
    files: tuple[FileProgress, ...]
    done_bytes: int
    total_bytes: int | None
    speed: float  # bytes per second, recent
    eta: float | None  # seconds; None when unknown (no speed, or sizes unknown)

    @classmethod
    def of(cls, job: DownloadJob, files: tuple[FileProgress, ...], speed: float) -> JobProgress:
        done = sum(f.done_bytes for f in files)
        total = job.size
        eta = (total - done) / speed if total is not None and speed > 0 else None
        return cls(job, files, done, total, speed, eta)

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def state(self) -> str:
        return self.job.state

    @property
    def message(self) -> str:
        return self.job.message

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.job.to_json(), "done_bytes": self.done_bytes, "total_bytes": self.total_bytes,
            "speed": self.speed, "eta": self.eta,
            "file_progress": [
                {"path": f.path, "done_bytes": f.done_bytes, "phase": f.phase}
                for f in self.files
            ],
        }


@dataclass(frozen=True)
class DownloadsSnapshot:
    """Every job's progress and the totals over the jobs still moving."""

    jobs: tuple[JobProgress, ...]
    done_bytes: int
    total_bytes: int | None
    speed: float
    eta: float | None

    @classmethod
    def of(cls, jobs: tuple[JobProgress, ...]) -> DownloadsSnapshot:
        live = [j for j in jobs if not j.job.settled]
        done = sum(j.done_bytes for j in live)
        totals = [j.total_bytes for j in live]
        total = None if any(t is None for t in totals) else sum(t or 0 for t in totals)
        speed = sum(j.speed for j in live)
        eta = (total - done) / speed if total is not None and speed > 0 else None
        return cls(jobs, done, total, speed, eta)

    def get(self, job_id: int) -> JobProgress | None:
        return next((j for j in self.jobs if j.id == job_id), None)
