"""A server whose file is not the size the Hub lists (a mirror behind HF_ENDPOINT, a proxy):
it announces another length, or sends more bytes than listed, announced or not, also when it
ignores Range on a resume. The `.part` never holds more than the listed size, the answer is
refused or cut at that size, a file whose listed bytes verify is kept, anything else fails with
a message that says what the server did, after one retry, and leaves no `.part` behind. Run
through `DownloadManager` and `openlid download` against the local Hub (tests/hub)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from desktop.cli.hub import main as hub_main
from desktop.core.downloads import fetch
from desktop.core.downloads.manager import DownloadManager
from desktop.core.downloads.progress import format_size
from desktop.core.downloads.store import JOB_DONE, JOB_FAILED
from desktop.core.hub.client import ModelFile, RepoDetails
from tests.hub.conftest import BIG_FILE, BIG_REPO, cdn_ranges, repo_by_id
from tests.hub.repos import FakeRepo
from tests.hub.server import HubServer

Managers = Callable[..., DownloadManager]
Details = Callable[[str], RepoDetails]
_JUNK = 5 << 20  # the longer file is 5 MiB longer


@pytest.fixture
def high_water(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The furthest byte ever written into a `.part` during the test (0: none written)."""
    furthest = [0]
    real_write = fetch._write

    def spy(f: BinaryIO, data: bytes) -> None:
        real_write(f, data)
        furthest[0] = max(furthest[0], f.tell())

    monkeypatch.setattr(fetch, "_write", spy)
    return furthest


@pytest.fixture(params=[False, True], ids=["direct", "proxy"])
def byte_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both byte paths: http.client, and httpx2 (taken when a proxy is configured; this one is
    bypassed for 127.0.0.1, so the local Hub is still reached)."""
    if request.param:
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
    return bool(request.param)


def _big(details: Details) -> tuple[RepoDetails, tuple[ModelFile, ...], int]:
    repo = details(BIG_REPO)
    return repo, repo.units[0].files, repo.units[0].size or 0


def _download(managers: Managers, dest: Path, files: Any, commit: str | None) -> Any:
    manager = managers()
    manager.start()
    return manager.wait(manager.enqueue(BIG_REPO, files, dest, commit), 20)


def _verified(path: Path, files: tuple[ModelFile, ...]) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == files[0].sha256


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """The download folder, apart from the queue's database in tmp_path."""
    return tmp_path / "models"


def test_an_announced_longer_file_is_refused_before_reading(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    high_water: list[int], byte_path: bool, dest: Path,
) -> None:
    repo, files, size = _big(details)
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    job = _download(managers, dest, files, repo.commit)
    assert job.state == JOB_FAILED
    assert job.message.startswith(
        f"The server announced {format_size(size + _JUNK)} for {BIG_FILE}, more than the "
        f"{format_size(size)} the Hub lists for this file")
    assert "a mirror or proxy on the way may serve a different file" in job.message
    assert "closed early" not in job.message
    assert "the same on 2 tries" in job.message  # not retried on and on
    assert len(cdn_ranges(hub, BIG_FILE)) == 2
    assert high_water[0] == 0  # not one byte of it was written
    assert _left_behind(dest) == []  # no .part, no final file


def test_a_longer_file_once_is_retried(managers: Managers, details: Details, hub: HubServer,
                                       tmp_path: Path, high_water: list[int]) -> None:
    repo, files, size = _big(details)
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 1  # a proxy's passing hiccup
    job = _download(managers, tmp_path, files, repo.commit)
    assert job.state == JOB_DONE
    assert cdn_ranges(hub, BIG_FILE) == [None, None]
    assert high_water[0] == size
    assert _verified(tmp_path / BIG_FILE, files)


def test_an_unannounced_overrun_stops_at_the_listed_size_and_keeps_a_good_file(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    high_water: list[int], byte_path: bool,
) -> None:
    repo, files, size = _big(details)
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    hub.faults.hide_length = True  # no Content-Length: only the listed size says when to stop
    job = _download(managers, tmp_path, files, repo.commit)
    assert job.state == JOB_DONE, job.message
    assert high_water[0] == size
    assert len(cdn_ranges(hub, BIG_FILE)) == 1  # its listed bytes verified: no second try
    assert _verified(tmp_path / BIG_FILE, files)
    assert not (tmp_path / f"{BIG_FILE}.part").exists()


def test_an_unannounced_longer_different_file_fails_and_leaves_nothing(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    high_water: list[int], byte_path: bool, dest: Path,
) -> None:
    repo, files, size = _big(details)
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    hub.faults.hide_length = True
    hub.faults.corrupt_times, hub.faults.corrupt_offset = 100, 5_000  # another file, in fact
    job = _download(managers, dest, files, repo.commit)
    assert job.state == JOB_FAILED
    assert job.message.startswith(
        f"The server sent more than the {format_size(size)} the Hub lists for {BIG_FILE}; "
        "the download was stopped at that size, and those bytes do not match the Hub's "
        "checksum")
    assert "a mirror or proxy on the way may serve a different file" in job.message
    assert "the same on 2 tries" in job.message
    assert len(cdn_ranges(hub, BIG_FILE)) == 2
    assert high_water[0] == size
    assert _left_behind(dest) == []


def test_an_unannounced_overrun_without_a_listed_hash_is_thrown_away(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    high_water: list[int], dest: Path,
) -> None:
    repo, _, size = _big(details)
    unhashed = ModelFile(BIG_REPO, BIG_FILE, size)  # a size, but no sha256 nor blob id
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    hub.faults.hide_length = True
    job = _download(managers, dest, [unhashed], repo.commit)
    assert job.state == JOB_FAILED
    assert "stopped at that size, and thrown away, as the Hub lists no checksum" in job.message
    assert high_water[0] == size
    assert _left_behind(dest) == []


def test_a_resume_the_server_answers_from_zero_with_more_stops_at_the_listed_size(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    fake_repos: list[FakeRepo], high_water: list[int], byte_path: bool,
) -> None:
    repo, files, size = _big(details)
    data = repo_by_id(fake_repos, BIG_REPO).files[BIG_FILE].data
    (tmp_path / f"{BIG_FILE}.part").write_bytes(data[:400_000])
    hub.faults.ignore_range = True  # 200 with the whole file, from byte 0
    hub.faults.hide_length = True
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    job = _download(managers, tmp_path, files, repo.commit)
    assert job.state == JOB_DONE, job.message
    assert cdn_ranges(hub, BIG_FILE) == ["bytes=400000-"]
    assert high_water[0] == size
    assert _verified(tmp_path / BIG_FILE, files)


@pytest.mark.parametrize("ignore_range", [False, True], ids=["206", "200-from-zero"])
def test_a_resume_the_server_answers_with_more_than_the_rest_is_refused(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    fake_repos: list[FakeRepo], high_water: list[int], ignore_range: bool,
) -> None:
    repo, files, size = _big(details)
    data = repo_by_id(fake_repos, BIG_REPO).files[BIG_FILE].data
    part = tmp_path / f"{BIG_FILE}.part"
    part.write_bytes(data[:400_000])
    # A 206 of the rest that goes on, or the whole longer file from byte 0: both announced.
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    hub.faults.ignore_range = ignore_range
    job = _download(managers, tmp_path, files, repo.commit)
    assert job.state == JOB_FAILED
    assert f"more than the {format_size(size)} the Hub lists" in job.message
    assert cdn_ranges(hub, BIG_FILE) == ["bytes=400000-", "bytes=400000-"]
    assert high_water[0] == 0
    # What came before is the right file's start: kept for a resume from a better server.
    assert part.read_bytes() == data[:400_000]


@pytest.mark.parametrize("resume", [False, True], ids=["from-zero", "resume"])
def test_a_file_of_another_size_is_refused_before_reading(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    fake_repos: list[FakeRepo], high_water: list[int], resume: bool,
) -> None:
    repo, files, size = _big(details)
    # The Hub lists 10 bytes fewer than the server has: a 200 announces the server's length,
    # a 206 names it in Content-Range.
    listed = ModelFile(BIG_REPO, BIG_FILE, size - 10, files[0].sha256)
    if resume:
        (tmp_path / f"{BIG_FILE}.part").write_bytes(
            repo_by_id(fake_repos, BIG_REPO).files[BIG_FILE].data[:1000])
    job = _download(managers, tmp_path, [listed], repo.commit)
    assert job.state == JOB_FAILED
    said = (f"The server says {BIG_FILE} is {size:,} bytes, but the Hub lists {size - 10:,} "
            "bytes; " if resume else
            f"The server announced {size:,} bytes for {BIG_FILE}, more than the {size - 10:,} "
            "bytes the Hub lists for this file; ")
    assert job.message.startswith(said + "the download was stopped before reading any of it")
    assert "closed early" not in job.message
    assert len(cdn_ranges(hub, BIG_FILE)) == 2
    assert high_water[0] == 0
    assert not (tmp_path / BIG_FILE).exists()


def test_a_part_removed_before_it_is_locked_is_not_written(
    managers: Managers, details: Details, hub: HubServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another Openlid process deletes the .part (its download failed) between this attempt's
    # open and its lock: writing on would fill a file no name leads to.
    repo, files, _ = _big(details)
    real_lock = fetch._lock
    raced: list[bool] = []

    def late_lock(f: BinaryIO) -> bool:
        if not raced:
            raced.append(True)
            (tmp_path / f"{BIG_FILE}.part").unlink()
        return real_lock(f)

    monkeypatch.setattr(fetch, "_lock", late_lock)
    job = _download(managers, tmp_path, files, repo.commit)
    assert job.state == JOB_DONE, job.message
    assert _verified(tmp_path / BIG_FILE, files)


def test_openlid_download_reports_an_overrun_and_cleans_up(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], details: Details,
) -> None:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))
    _, _, size = _big(details)
    hub.faults.overrun_bytes, hub.faults.overrun_times = _JUNK, 100
    dest = tmp_path / "m"
    code = hub_main(["download", BIG_REPO, "--dest", str(dest)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"for {BIG_FILE}, more than the {format_size(size)} the Hub lists" in err
    assert "Traceback" not in err
    assert list(dest.iterdir()) == []
