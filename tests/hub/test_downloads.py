"""DownloadManager against the local Hub: whole models, pause/resume, quitting and SIGKILL with
resume from the `.part` bytes, cancel, concurrency and progress snapshots. Faults (dropped
connections, corruption, full disks, refusals) are in test_download_faults.py."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from desktop.core.downloads.manager import DownloadManager
from desktop.core.downloads.progress import DownloadsSnapshot
from desktop.core.downloads.store import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_DOWNLOADING,
    JOB_PAUSED,
    JOB_QUEUED,
)
from desktop.core.hub.client import RepoDetails
from tests.hub.conftest import BIG_FILE, BIG_REPO, repo_by_id, unit_files
from tests.hub.repos import FakeRepo
from tests.hub.server import HubServer, wait_until

ROOT = Path(__file__).resolve().parents[2]
Managers = Callable[..., DownloadManager]
Details = Callable[[str], RepoDetails]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _part(dest: Path, name: str = BIG_FILE) -> Path:
    return dest / f"{name}.part"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _phase(manager: DownloadManager, job_id: int) -> str:
    progress = manager.snapshot().get(job_id)
    return progress.files[0].phase if progress is not None else ""


def test_single_file_lands_verified(managers: Managers, details: Details, tmp_path: Path,
                                    fake_repos: list[FakeRepo]) -> None:
    repo = details("openlid-test/tiny-gguf")
    manager = managers()
    manager.start()
    job_id = manager.enqueue(repo.summary.repo_id, unit_files(repo, "tiny-Q8_0.gguf"),
                             tmp_path / "m", repo.commit)
    job = manager.wait(job_id, timeout=10)
    assert job.state == JOB_DONE
    assert job.revision == repo.commit
    final = tmp_path / "m" / "tiny-Q8_0.gguf"
    expected = repo_by_id(fake_repos, "openlid-test/tiny-gguf").files["tiny-Q8_0.gguf"]
    assert _sha256(final) == expected.sha256
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["tiny-Q8_0.gguf"]
    assert manager.snapshot().get(job_id).fraction == 1.0  # type: ignore[union-attr]


def test_split_gguf_and_safetensors_download_as_one_job(managers: Managers, details: Details,
                                                       tmp_path: Path) -> None:
    split, st = details("openlid-test/split-gguf"), details("openlid-test/tiny-safetensors")
    manager = managers(concurrency=3)
    manager.start()
    a = manager.enqueue(split.summary.repo_id, unit_files(split, "tiny-Q8_0.gguf"),
                        tmp_path / "split", split.commit)
    b = manager.enqueue(st.summary.repo_id, unit_files(st, "safetensors"), tmp_path / "st",
                        st.commit)
    assert manager.wait(a, 10).state == JOB_DONE
    assert manager.wait(b, 10).state == JOB_DONE
    assert len(list((tmp_path / "split").glob("tiny-Q8_0-0000?-of-00003.gguf"))) == 3
    for f in unit_files(st, "safetensors"):  # small files checked by their git blob id
        data = (tmp_path / "st" / f.path).read_bytes()
        if f.sha256:
            assert hashlib.sha256(data).hexdigest() == f.sha256
        else:
            assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == f.blob_id


def test_pause_and_resume_continue_from_the_part(managers: Managers, details: Details,
                                                 hub: HubServer, tmp_path: Path) -> None:
    repo = details(BIG_REPO)
    size = repo.units[0].size or 0
    hub.faults.throttle_bps = 1_500_000
    manager = managers()
    manager.start()
    job_id = manager.enqueue(BIG_REPO, repo.units[0].files, tmp_path, repo.commit)
    part = _part(tmp_path)
    assert wait_until(lambda: _size(part) >= 200_000)
    manager.pause(job_id)
    assert manager.wait(job_id, 5).state == JOB_PAUSED
    assert wait_until(lambda: _phase(manager, job_id) == "waiting")  # the worker let go
    kept = _size(part)
    time.sleep(0.2)
    assert _size(part) == kept
    assert not (tmp_path / BIG_FILE).exists()
    hub.faults.throttle_bps = 0
    manager.resume(job_id)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert cdn_ranges_tail(hub) == f"bytes={kept}-"
    # Only the bytes in flight at the pause were fetched twice.
    assert hub.served(BIG_FILE) - size < 64 << 10
    assert _sha256(tmp_path / BIG_FILE) == repo.units[0].files[0].sha256


def cdn_ranges_tail(hub: HubServer) -> str | None:
    ranges = [r.headers.get("range") for r in hub.requests if r.server == "cdn"]
    return ranges[-1] if ranges else None


def test_restart_brings_the_queue_back(managers: Managers, details: Details, hub: HubServer,
                                       tmp_path: Path) -> None:
    repo = details(BIG_REPO)
    hub.faults.throttle_bps = 1_500_000
    first = managers()
    first.start()
    job_id = first.enqueue(BIG_REPO, repo.units[0].files, tmp_path / "m", repo.commit)
    paused_id = first.enqueue("openlid-test/tiny-gguf",
                              unit_files(details("openlid-test/tiny-gguf"), "tiny-F16.gguf"),
                              tmp_path / "other")
    first.pause(paused_id)  # may have finished already: tiny; the pause is then refused
    assert wait_until(lambda: _size(_part(tmp_path / "m")) >= 200_000)
    first.close()  # quitting the app: no pause, the job stays "downloading" on disk
    kept = _size(_part(tmp_path / "m"))
    assert kept > 0
    assert not (tmp_path / "m" / BIG_FILE).exists()

    hub.faults.throttle_bps = 0
    second = managers()
    restored = {j.id: j for j in second.jobs()}
    assert restored[job_id].state == JOB_QUEUED
    assert restored[paused_id].state in (JOB_PAUSED, JOB_DONE)
    assert second.snapshot().get(job_id).done_bytes == kept  # type: ignore[union-attr]
    second.start()
    assert second.wait(job_id, 10).state == JOB_DONE
    assert cdn_ranges_tail(hub) == f"bytes={kept}-"
    assert second.job(paused_id).state in (JOB_PAUSED, JOB_DONE)


def _cli_download(hub: HubServer, home: Path, dest: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENLID_HOME": str(home), "HF_ENDPOINT": hub.url,
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "desktop.cli.hub", "download", BIG_REPO, "--quant", "Q4_K_M",
           "--dest", str(dest)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_sigkill_at_several_points_then_resume(details: Details, hub: HubServer,
                                               tmp_path: Path) -> None:
    repo = details(BIG_REPO)
    size = repo.units[0].size or 0
    dest, home = tmp_path / "models", tmp_path / "home"
    part = _part(dest)
    hub.faults.throttle_bps = 1_000_000
    for point in (150_000, 500_000):
        served_before, on_disk_before = hub.served(BIG_FILE), _size(part)
        proc = _cli_download(hub, home, dest)
        try:
            assert wait_until(lambda p=point: _size(part) >= p, timeout=30)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        assert wait_until(hub.quiet)  # the server noticed: its counter is final
        assert proc.returncode == -signal.SIGKILL
        assert not (dest / BIG_FILE).exists()
        kept = _size(part)
        # What the killed run fetched is on disk, but for the bytes in flight at the kill.
        fetched = hub.served(BIG_FILE) - served_before
        assert 0 <= fetched - (kept - on_disk_before) < 64 << 10
    hub.faults.throttle_bps = 0
    kept, served_before = _size(part), hub.served(BIG_FILE)
    proc = _cli_download(hub, home, dest)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == str(dest / BIG_FILE)
    assert _sha256(dest / BIG_FILE) == repo.units[0].files[0].sha256
    # The last run fetched exactly the missing bytes: none of those on disk again.
    assert hub.served(BIG_FILE) - served_before == size - kept
    assert cdn_ranges_tail(hub) == f"bytes={kept}-"


def test_cancel_deletes_the_part_and_resume_starts_over(managers: Managers, details: Details,
                                                        hub: HubServer, tmp_path: Path) -> None:
    repo = details(BIG_REPO)
    hub.faults.throttle_bps = 1_500_000
    manager = managers()
    manager.start()
    job_id = manager.enqueue(BIG_REPO, repo.units[0].files, tmp_path, repo.commit)
    assert wait_until(lambda: _size(_part(tmp_path)) > 100_000)
    manager.cancel(job_id)
    assert manager.wait(job_id, 5).state == JOB_CANCELLED
    assert wait_until(lambda: not _part(tmp_path).exists(), timeout=5)
    assert not (tmp_path / BIG_FILE).exists()
    hub.faults.throttle_bps = 0
    manager.retry(job_id)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert cdn_ranges_tail(hub) is None  # from the first byte


def test_same_download_twice_is_one_job(managers: Managers, details: Details, hub: HubServer,
                                        tmp_path: Path) -> None:
    repo = details("openlid-test/tiny-gguf")
    files = unit_files(repo, "tiny-Q4_K_M.gguf")
    manager = managers()
    first = manager.enqueue(repo.summary.repo_id, files, tmp_path, repo.commit)
    assert manager.enqueue(repo.summary.repo_id, files, tmp_path, repo.commit) == first
    manager.start()
    assert manager.wait(first, 10).state == JOB_DONE
    gets = len([r for r in hub.requests if r.server == "cdn"])
    # Queued again once done: a new job that finds the verified file and fetches nothing.
    again = manager.enqueue(repo.summary.repo_id, files, tmp_path, repo.commit)
    assert again != first
    assert manager.wait(again, 10).state == JOB_DONE
    assert len([r for r in hub.requests if r.server == "cdn"]) == gets
    manager.remove(first)
    assert [j.id for j in manager.jobs()] == [again]
    assert (tmp_path / "tiny-Q4_K_M.gguf").exists()


def test_concurrency_bounds_files_in_flight(managers: Managers, details: Details,
                                            hub: HubServer, tmp_path: Path) -> None:
    repo = details(BIG_REPO)
    hub.faults.throttle_bps = 2_000_000
    seen: list[tuple[str, DownloadsSnapshot]] = []
    manager = managers(concurrency=2)
    manager.subscribe(lambda snap: seen.append((threading.current_thread().name, snap)))
    manager.start()
    ids = [manager.enqueue(BIG_REPO, repo.units[0].files, tmp_path / d, repo.commit)
           for d in ("a", "b", "c")]
    assert all(manager.wait(i, 20).state == JOB_DONE for i in ids)
    running = [sum(j.state == JOB_DOWNLOADING for j in snap.jobs) for _, snap in seen]
    assert max(running) == 2  # two at once, never three
    assert {name for name, _ in seen} >= {"openlid-download-1", "openlid-download-2"}
    workers = {t.name for t in threading.enumerate()}
    assert {"openlid-download-1", "openlid-download-2"} <= workers


def test_progress_snapshots_are_throttled_and_ordered(managers: Managers, details: Details,
                                                      hub: HubServer, tmp_path: Path) -> None:
    repo = details(BIG_REPO)
    size = repo.units[0].size
    hub.faults.throttle_bps = 1_500_000
    seen: list[DownloadsSnapshot] = []
    manager = managers(progress_interval=0.2)
    manager.subscribe(seen.append)
    manager.start()
    start = time.monotonic()
    job_id = manager.enqueue(BIG_REPO, repo.units[0].files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    elapsed = time.monotonic() - start
    wait_until(lambda: seen[-1].jobs[0].state == JOB_DONE, timeout=2)
    # ~1 progress call per interval, plus one per state change (queued, claimed, done …).
    assert len(seen) <= elapsed / 0.2 + 8
    done = [s.jobs[0].done_bytes for s in seen]
    assert done == sorted(done)
    assert done[-1] == size
    moving = [s for s in seen if s.jobs[0].state == JOB_DOWNLOADING and s.speed > 0]
    assert moving
    assert all(s.eta is not None for s in moving)
    assert seen[-1].jobs[0].to_json()["done_bytes"] == size
