"""The Hub window's downloads, driven offscreen against the local Hub (tests/hub): a model's
Download button, progress on the job row and overall, pause and resume, cancel and remove, the
queue coming back after a restart, a refused download (disk space) and a failed one (the Hub
gone) explained on its row. The bytes land verified (sha256) in the destination."""

# Fixtures come from tests.ui.hub_helpers by import, so their names reappear as parameters.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop.core.downloads.manager import RetryPolicy
from desktop.core.downloads.store import JOB_DONE
from desktop.ui.hub import HubWindow
from desktop.ui.hub.downloads_panel import JobRow
from tests.hub.repos import FakeRepo
from tests.hub.server import HubServer
from tests.ui.hub_helpers import (  # noqa: F401 - fixtures
    BIG_FILE,
    BIG_REPO,
    MakeWindow,
    _hub_env,
    fake_repos,
    hub,
    make_window,
    open_repo,
    sha256,
    token_store,
    window,
)

pytestmark = [
    pytest.mark.usefixtures("no_dangling"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]


def dest(tmp_path: Path, repo_id: str = BIG_REPO) -> Path:
    return tmp_path / "models" / Path(*repo_id.split("/"))


def big_sha(fake_repos: list[FakeRepo]) -> str:
    repo = next(r for r in fake_repos if r.repo_id == BIG_REPO)
    return repo.files[BIG_FILE].sha256


def only_row(window: HubWindow) -> JobRow:
    rows = list(window.downloads_panel.rows.values())
    assert len(rows) == 1
    return rows[0]


def start_big(qtbot: Any, window: HubWindow, hub: HubServer, bps: int) -> JobRow:
    hub.faults.throttle_bps = bps
    open_repo(qtbot, window, BIG_REPO, card=False)
    window.model_page.download_button(BIG_FILE).click()
    qtbot.waitUntil(lambda: bool(window.downloads_panel.rows), timeout=5000)
    row = only_row(window)
    qtbot.waitUntil(lambda: 0 < row.bar.value() < 1000, timeout=10_000)
    return row


def test_download_shows_progress_and_lands_verified(
        qtbot: Any, window: HubWindow, hub: HubServer, tmp_path: Path,
        fake_repos: list[FakeRepo]) -> None:
    row = start_big(qtbot, window, hub, bps=600_000)
    # Mid-download: the row and the header show bytes, speed and time left.
    assert row.state.text() == "Downloading"
    assert " of 1.0 MiB" in row.detail.text()
    assert "/s" in row.detail.text()
    panel = window.downloads_panel
    assert panel.overall.isVisibleTo(panel)
    assert "(1 active)" in panel.heading.text()
    assert row.buttons["pause"].isVisibleTo(row)
    assert row.buttons["cancel"].isVisibleTo(row)
    assert window.model_page.download_button(BIG_FILE).text().endswith("%")

    hub.faults.throttle_bps = 0
    with qtbot.waitSignal(window.sig_model_downloaded, timeout=20_000) as done:
        pass
    final = dest(tmp_path) / BIG_FILE
    assert done.args == [str(final)]
    assert sha256(final) == big_sha(fake_repos)
    assert not (dest(tmp_path) / f"{BIG_FILE}.part").exists()
    qtbot.waitUntil(lambda: row.state.text() == "Done")
    assert row.bar.value() == 1000
    assert row.buttons["folder"].isVisibleTo(row)
    page_button = window.model_page.download_button(BIG_FILE)
    mark = window.model_page.downloaded_mark(BIG_FILE)
    assert mark.isVisibleTo(window.model_page)
    assert mark.text() == "Downloaded ✓"
    qtbot.waitUntil(lambda: mark.width() >= mark.sizeHint().width(), timeout=2000)  # not cut
    assert page_button.text() == "Load"
    assert page_button.isEnabled()
    # A finished download is one click from chatting: Load on its row and on the page.
    assert row.buttons["load"].isVisibleTo(row)
    with qtbot.waitSignal(window.sig_load_requested, timeout=1000) as load:
        row.buttons["load"].click()
    assert load.args == [str(final)]
    with qtbot.waitSignal(window.sig_load_requested, timeout=1000) as load:
        page_button.click()
    assert load.args == [str(final)]
    assert not panel.overall.isVisibleTo(panel)
    assert panel.summary.text() == "1 finished"


def test_pause_and_resume_go_on_from_the_part_file(
        qtbot: Any, window: HubWindow, hub: HubServer, tmp_path: Path,
        fake_repos: list[FakeRepo]) -> None:
    row = start_big(qtbot, window, hub, bps=300_000)
    row.buttons["pause"].click()
    qtbot.waitUntil(lambda: row.state.text() == "Paused", timeout=5000)
    part = dest(tmp_path) / f"{BIG_FILE}.part"
    kept = part.stat().st_size
    assert 0 < kept < 1 << 20
    assert row.buttons["resume"].isVisibleTo(row)
    assert not row.buttons["pause"].isVisibleTo(row)
    assert window.model_page.download_button(BIG_FILE).text() == "Resume"
    assert row.bar.property("state") == "paused"  # its own colour (hub_style), not the blue
    hub.faults.throttle_bps = 0
    with qtbot.waitSignal(window.sig_model_downloaded, timeout=20_000):
        row.buttons["resume"].click()
    assert sha256(dest(tmp_path) / BIG_FILE) == big_sha(fake_repos)
    # The second request asked for the rest only.
    ranges = [r.headers.get("range") for r in hub.requests if r.server == "cdn"
              and r.method == "GET"]
    assert ranges[-1] is not None
    assert int(ranges[-1][6:].split("-")[0]) >= kept - (64 << 10)


def test_cancel_deletes_the_partial_file_and_remove_forgets_the_job(
        qtbot: Any, window: HubWindow, hub: HubServer, tmp_path: Path) -> None:
    row = start_big(qtbot, window, hub, bps=200_000)
    row.buttons["cancel"].click()
    qtbot.waitUntil(lambda: row.state.text() == "Cancelled", timeout=5000)
    part = dest(tmp_path) / f"{BIG_FILE}.part"
    qtbot.waitUntil(lambda: not part.exists(), timeout=5000)
    assert row.buttons["retry"].text() == "Download again"
    row.buttons["remove"].click()
    qtbot.waitUntil(lambda: not window.downloads_panel.rows, timeout=5000)
    assert window.downloads_panel.empty.isVisibleTo(window.downloads_panel)
    assert window.model_page.download_button(BIG_FILE).text() == "Download"


def test_the_queue_comes_back_after_a_restart(
        qtbot: Any, make_window: MakeWindow, hub: HubServer, tmp_path: Path,
        fake_repos: list[FakeRepo]) -> None:
    first = make_window()
    first.show()
    start_big(qtbot, first, hub, bps=200_000)
    first.shutdown()  # what closing the app does; the .part file stays
    part = dest(tmp_path) / f"{BIG_FILE}.part"
    assert part.exists()
    hub.faults.throttle_bps = 0

    second = make_window()
    with qtbot.waitSignal(second.sig_model_downloaded, timeout=20_000):
        second.show()
    row = only_row(second)
    qtbot.waitUntil(lambda: row.state.text() == "Done")
    assert sha256(dest(tmp_path) / BIG_FILE) == big_sha(fake_repos)
    assert second.downloads.snapshot.jobs[0].state == JOB_DONE
    third = make_window()  # a finished job is listed, and is not announced again
    assert only_row(third).state.text() == "Done"


def test_a_disk_without_room_refuses_with_a_message(
        qtbot: Any, make_window: MakeWindow) -> None:
    window = make_window(policy=RetryPolicy(space_margin=1 << 60))
    window.show()
    open_repo(qtbot, window, BIG_REPO, card=False)
    with qtbot.waitSignal(window.downloads.sig_download_refused, timeout=5000):
        window.model_page.download_button(BIG_FILE).click()
    panel = window.downloads_panel
    assert "Not enough disk space" in panel.message.text()
    assert panel.message.isVisibleTo(panel)
    assert not panel.rows
    assert "Not enough disk space" in window.model_page.notice.text


def test_a_lost_hub_fails_the_job_with_the_reason_on_its_row(
        qtbot: Any, window: HubWindow, hub: HubServer) -> None:
    row = start_big(qtbot, window, hub, bps=100_000)
    hub.stop()
    qtbot.waitUntil(lambda: row.state.text() == "Failed", timeout=20_000)
    assert row.message.isVisibleTo(row)
    assert row.message.text()
    assert row.buttons["retry"].isVisibleTo(row)
    assert row.buttons["remove"].isVisibleTo(row)
    assert window.model_page.download_button(BIG_FILE).text() == "Retry"
