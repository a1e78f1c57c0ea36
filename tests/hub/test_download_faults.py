"""DownloadManager when things go wrong: dropped and stalled connections, a server that ignores
Range or refuses it, corrupted bytes, a full disk, gated repos, a Hub that is gone. In every
case the final name holds only verified bytes, and the job ends in a state with a message."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from desktop.core.downloads import attempts, fetch
from desktop.core.downloads.manager import (
    DiskSpaceError,
    DownloadError,
    DownloadManager,
    RetryPolicy,
)
from desktop.core.downloads.store import JOB_DONE, JOB_FAILED, JOB_PAUSED
from desktop.core.hub.client import ModelFile, RepoDetails
from tests.hub.conftest import (
    BIG_FILE,
    BIG_REPO,
    DENIED,
    GRANTED,
    cdn_ranges,
    repo_by_id,
    unit_files,
)
from tests.hub.repos import FakeRepo
from tests.hub.server import HubServer, wait_until

Managers = Callable[..., DownloadManager]
Details = Callable[[str], RepoDetails]


def _start(managers: Managers, **kw: Any) -> DownloadManager:
    manager = managers(**kw)
    manager.start()
    return manager


def _big(details: Details) -> tuple[RepoDetails, tuple[ModelFile, ...], int]:
    repo = details(BIG_REPO)
    return repo, repo.units[0].files, repo.units[0].size or 0


def _verified(path: Path, files: tuple[ModelFile, ...]) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == files[0].sha256


def test_dropped_connections_resume_where_they_broke(managers: Managers, details: Details,
                                                     hub: HubServer, tmp_path: Path) -> None:
    repo, files, size = _big(details)
    hub.faults.drop_after, hub.faults.drop_times = 300_000, 2
    manager = _start(managers)
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert cdn_ranges(hub, BIG_FILE) == [None, "bytes=300000-", "bytes=600000-"]
    assert hub.served(BIG_FILE) == size  # not one byte twice
    assert _verified(tmp_path / BIG_FILE, files)


def test_server_ignoring_range_restarts_from_zero(managers: Managers, details: Details,
                                                  hub: HubServer, tmp_path: Path) -> None:
    repo, files, size = _big(details)
    hub.faults.drop_after, hub.faults.drop_times = 300_000, 1
    hub.faults.ignore_range = True  # answers 200 with the whole file
    manager = _start(managers)
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert hub.served(BIG_FILE) == 300_000 + size
    assert _verified(tmp_path / BIG_FILE, files)


def test_stalled_server_times_out_and_resumes(managers: Managers, details: Details,
                                              hub: HubServer, tmp_path: Path) -> None:
    repo, files, _ = _big(details)
    hub.faults.stall_after, hub.faults.stall_seconds, hub.faults.stall_times = 100_000, 10, 1
    manager = _start(managers, read_timeout=0.3)
    start = time.monotonic()
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert time.monotonic() - start < 5
    assert cdn_ranges(hub, BIG_FILE) == [None, "bytes=100000-"]


def test_corrupted_byte_is_caught_discarded_and_fetched_again(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path
) -> None:
    repo, files, size = _big(details)
    hub.faults.corrupt_times, hub.faults.corrupt_offset = 1, 123_456
    manager = _start(managers)
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert hub.served(BIG_FILE) == 2 * size  # the bad copy was thrown away whole
    assert _verified(tmp_path / BIG_FILE, files)


def test_always_corrupt_fails_and_never_leaves_a_final_file(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path
) -> None:
    repo, files, _ = _big(details)
    hub.faults.corrupt_times = 100
    manager = _start(managers)
    job = manager.wait(manager.enqueue(BIG_REPO, files, tmp_path, repo.commit), 10)
    assert job.state == JOB_FAILED
    assert "checksum" in job.message
    assert not (tmp_path / BIG_FILE).exists()


def test_part_files_left_by_a_crash(managers: Managers, details: Details, hub: HubServer,
                                    tmp_path: Path, fake_repos: list[FakeRepo]) -> None:
    repo, files, _ = _big(details)
    data = repo_by_id(fake_repos, BIG_REPO).files[BIG_FILE].data
    part = tmp_path / f"{BIG_FILE}.part"
    part.write_bytes(data)  # complete, but killed before the rename: just verify it
    manager = _start(managers)
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert not cdn_ranges(hub, BIG_FILE)
    assert _verified(tmp_path / BIG_FILE, files)

    other = tmp_path / "again"
    other.mkdir()
    (other / f"{BIG_FILE}.part").write_bytes(data + b"junk")  # longer than the file
    job_id = manager.enqueue(BIG_REPO, files, other, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert cdn_ranges(hub, BIG_FILE) == [None]
    assert _verified(other / BIG_FILE, files)


def test_a_refused_range_is_handled(managers: Managers, details: Details, hub: HubServer,
                                    tmp_path: Path, fake_repos: list[FakeRepo]) -> None:
    repo, files, size = _big(details)
    # The listing promised more bytes than the server has: resuming at its end answers 416.
    liar = ModelFile(BIG_REPO, BIG_FILE, size + 10, files[0].sha256)
    (tmp_path / f"{BIG_FILE}.part").write_bytes(
        repo_by_id(fake_repos, BIG_REPO).files[BIG_FILE].data)
    manager = _start(managers)
    job = manager.wait(manager.enqueue(BIG_REPO, [liar], tmp_path, repo.commit), 10)
    assert job.state == JOB_FAILED
    # 416, then from 0 a 200 of the server's length, refused before reading: not "closed early".
    assert job.message.startswith(f"The server announced {size:,} bytes for {BIG_FILE}, but "
                                  f"the Hub lists {size + 10:,} bytes")
    assert cdn_ranges(hub, BIG_FILE) == [f"bytes={size}-", None, None]
    assert not (tmp_path / BIG_FILE).exists()
    assert not (tmp_path / f"{BIG_FILE}.part").exists()


def test_disk_filling_up_pauses_the_job(managers: Managers, details: Details, hub: HubServer,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, files, _ = _big(details)
    real_write = fetch._write

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def filling(f: BinaryIO, data: bytes) -> None:
        real_write(FullDisk() if f.tell() + len(data) > 400_000 else f, data)  # type: ignore[arg-type]

    monkeypatch.setattr(fetch, "_write", filling)
    manager = _start(managers)
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    job = manager.wait(job_id, 10)
    assert job.state == JOB_PAUSED
    assert "disk filled up" in job.message
    assert "resume" in job.message
    kept = (tmp_path / f"{BIG_FILE}.part").stat().st_size
    assert 0 < kept <= 400_000
    monkeypatch.setattr(fetch, "_write", real_write)
    manager.resume(job_id)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert cdn_ranges(hub, BIG_FILE)[-1] == f"bytes={kept}-"
    assert _verified(tmp_path / BIG_FILE, files)


class _FakeShutil:
    def __init__(self, usage: Any) -> None:
        self.usage = usage

    def disk_usage(self, _path: object) -> Any:
        return self.usage


def _free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    usage = shutil.disk_usage("/")
    fake = type(usage)(usage.total, usage.total - free, free)
    monkeypatch.setattr(attempts, "shutil", _FakeShutil(fake))


def test_disk_space_is_checked_before_starting(managers: Managers, details: Details,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo, files, size = _big(details)
    policy = RetryPolicy(backoff_base=0.01, space_margin=10 << 20)
    manager = _start(managers, policy=policy)
    _free(monkeypatch, size + (5 << 20))  # the file fits, the margin does not
    with pytest.raises(DiskSpaceError, match="Not enough disk space") as err:
        manager.enqueue(BIG_REPO, files, tmp_path / "m", repo.commit)
    assert "10.0 MiB to spare" in str(err.value)
    assert not manager.jobs()
    assert not (tmp_path / "m").exists()


def test_disk_space_gone_by_the_time_a_file_starts(managers: Managers, details: Details,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo, files, _ = _big(details)
    manager = managers()
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    _free(monkeypatch, 1000)
    manager.start()
    job = manager.wait(job_id, 10)
    assert job.state == JOB_PAUSED
    assert "Not enough disk space" in job.message


def test_gated_repo_without_access_fails_with_the_reason(managers: Managers, details: Details,
                                                         tmp_path: Path) -> None:
    repo = details("openlid-gated/tiny-gated")
    files = unit_files(repo, "gated-Q4_K_M.gguf")
    anonymous = _start(managers, token=False)
    job = anonymous.wait(anonymous.enqueue(repo.summary.repo_id, files, tmp_path / "a"), 10)
    assert job.state == JOB_FAILED
    assert "is gated" in job.message
    assert "hf auth login" in job.message
    anonymous.close()
    denied = _start(managers, token=DENIED)
    job = denied.wait(denied.enqueue(repo.summary.repo_id, files, tmp_path / "b"), 10)
    assert job.state == JOB_FAILED
    assert "not been granted access" in job.message


def test_token_goes_to_the_hub_but_never_to_the_cdn(managers: Managers, details: Details,
                                                    hub: HubServer, tmp_path: Path) -> None:
    repo = details("openlid-gated/tiny-gated")
    manager = _start(managers, token=GRANTED)
    job_id = manager.enqueue(repo.summary.repo_id, unit_files(repo, "gated-Q4_K_M.gguf"),
                             tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    resolves = [r for r in hub.requests if "/resolve/" in r.path]
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert resolves
    assert cdn
    assert all(r.headers.get("authorization") == f"Bearer {GRANTED}" for r in resolves)
    assert all("authorization" not in r.headers for r in cdn)


def test_offline_hub_fails_after_retries_with_a_clear_message(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path
) -> None:
    repo, files, _ = _big(details)
    hub.stop()
    manager = _start(managers)
    job = manager.wait(manager.enqueue(BIG_REPO, files, tmp_path, repo.commit), 10)
    assert job.state == JOB_FAILED
    assert job.message.startswith("Cannot reach the Hugging Face Hub at 127.0.0.1")
    assert "gave up after 4 tries" in job.message


def test_text_files_come_unencoded(managers: Managers, details: Details, hub: HubServer,
                                   tmp_path: Path, fake_repos: list[FakeRepo]) -> None:
    repo = details("openlid-test/tiny-safetensors")
    config = next(f for f in repo.files if f.path == "config.json")
    hub.faults.gzip_text = True  # gzip, ignoring Range, when the client allows it
    manager = _start(managers)
    job_id = manager.enqueue(repo.summary.repo_id, [config], tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    want = repo_by_id(fake_repos, "openlid-test/tiny-safetensors").files["config.json"].data
    assert (tmp_path / "config.json").read_bytes() == want
    assert hub.requests[-1].headers["accept-encoding"] == "identity"


def test_a_wrong_file_at_the_final_name_is_replaced(managers: Managers, details: Details,
                                                    tmp_path: Path) -> None:
    repo, files, _ = _big(details)
    (tmp_path / BIG_FILE).write_bytes(b"not the model")
    manager = _start(managers)
    assert manager.wait(manager.enqueue(BIG_REPO, files, tmp_path, repo.commit), 10).state \
        == JOB_DONE
    assert _verified(tmp_path / BIG_FILE, files)


def test_names_that_leave_the_folder_are_refused(managers: Managers, tmp_path: Path) -> None:
    manager = managers()
    for bad in ("../evil.gguf", "/etc/evil.gguf", "a/../../evil.gguf"):
        with pytest.raises(DownloadError, match="leaves the download folder"):
            manager.enqueue("x/y", [ModelFile("x/y", bad, 10)], tmp_path)
    with pytest.raises(DownloadError, match="nothing"):
        manager.enqueue("x/y", [], tmp_path)


def test_close_during_a_transfer_joins_promptly(managers: Managers, details: Details,
                                                hub: HubServer, tmp_path: Path) -> None:
    repo, files, _ = _big(details)
    hub.faults.throttle_bps = 500_000
    manager = _start(managers, concurrency=3)
    manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert wait_until(lambda: (tmp_path / f"{BIG_FILE}.part").exists())
    start = time.monotonic()
    manager.close()
    assert time.monotonic() - start < 1


def test_a_part_being_written_elsewhere_is_left_alone(managers: Managers, details: Details,
                                                      hub: HubServer, tmp_path: Path) -> None:
    repo, files, size = _big(details)
    hub.faults.throttle_bps = 1_000_000
    app = _start(managers)
    job_id = app.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert wait_until(lambda: (tmp_path / f"{BIG_FILE}.part").exists())
    # Another process (its own database) asked for the same file into the same folder.
    cli = DownloadManager(tmp_path / "cli.sqlite3", endpoint=hub.url, token=False,
                          policy=RetryPolicy(max_attempts=2, backoff_base=0.01))
    try:
        cli.start()
        job = cli.wait(cli.enqueue(BIG_REPO, files, tmp_path, repo.commit), 10)
        assert job.state == JOB_FAILED
        assert "being written by another process" in job.message
    finally:
        cli.close()
    hub.faults.throttle_bps = 0
    assert app.wait(job_id, 10).state == JOB_DONE
    assert hub.served(BIG_FILE) == size
    assert _verified(tmp_path / BIG_FILE, files)


def test_a_failing_listener_does_not_fail_the_download(managers: Managers, details: Details,
                                                       tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    repo, files, _ = _big(details)
    manager = managers()

    def broken(_snapshot: object) -> None:
        raise RuntimeError("listener bug")

    manager.subscribe(broken)
    manager.start()
    assert manager.wait(manager.enqueue(BIG_REPO, files, tmp_path, repo.commit), 10).state \
        == JOB_DONE
    assert "download listener failed" in caplog.text


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxy"])
def test_both_byte_paths_resume_and_verify(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, proxied: bool,
) -> None:
    # http.client knows no proxies, so with one configured the fast byte path steps aside for
    # httpx2, which honours it (here a proxy bypassed for 127.0.0.1, so the Hub is reached).
    if proxied:
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
    direct: list[str] = []
    real_direct = fetch.direct_get

    def spy(*args: Any, **kw: Any) -> Any:
        direct.append(args[1])
        return real_direct(*args, **kw)

    monkeypatch.setattr(fetch, "direct_get", spy)
    repo, files, _ = _big(details)
    hub.faults.drop_after, hub.faults.drop_times = 300_000, 1
    hub.faults.corrupt_times, hub.faults.corrupt_offset = 1, 700_000
    manager = _start(managers)
    job_id = manager.enqueue(BIG_REPO, files, tmp_path, repo.commit)
    assert manager.wait(job_id, 10).state == JOB_DONE
    assert bool(direct) is not proxied
    assert cdn_ranges(hub, BIG_FILE)[:2] == [None, "bytes=300000-"]
    assert _verified(tmp_path / BIG_FILE, files)
