"""The Hub window's browser and model page, driven offscreen against the local Hub (tests/hub):
search with filters, sort and paging; stale answers dropped; a repo's card and grouped files with
quant and fit badges; gated and private repos with a token login; an offline Hub; and a GUI
thread that never waits on the network. Downloads are in test_hub_downloads.py."""

# Fixtures come from tests.ui.hub_helpers by import, so their names reappear as parameters.
# ruff: noqa: F811

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer, QUrl

from desktop.core.hub.client import ModelSummary
from desktop.ui.hub import HubWindow
from desktop.ui.hub.browser import COLUMNS, HubBrowser
from desktop.ui.hub.card_view import CardView, card_for_display
from desktop.ui.hub.hub_format import format_count, format_updated, param_count
from tests.hub import server as hub_server
from tests.hub.server import HubServer
from tests.ui.hub_helpers import (  # noqa: F401 - fixtures
    GRANTED,
    _hub_env,
    fake_repos,
    hub,
    make_window,
    open_repo,
    token_store,
    whoami,
    window,
)

pytestmark = [
    pytest.mark.usefixtures("no_dangling"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]


def table(browser: HubBrowser) -> list[tuple[str, ...]]:
    model = browser.table.model()
    return [tuple(str(model.index(r, c).data()) for c in range(len(COLUMNS)))
            for r in range(model.rowCount())]


def names(browser: HubBrowser) -> list[str]:
    return [row[0] for row in table(browser)]


def search(qtbot: Any, window: HubWindow, text: str = "") -> None:
    with qtbot.waitSignal(window.hub.sig_search_finished, timeout=10_000):
        window.search(text)


def slow_search(monkeypatch: pytest.MonkeyPatch, word: str, seconds: float = 1.0) -> None:
    """The local Hub answers searches for `word` after `seconds` (others at once)."""
    original = hub_server._Handler._list

    def delayed(handler: Any, query: dict[str, list[str]]) -> None:
        if query.get("search", [""])[0] == word:
            time.sleep(seconds)
        original(handler, query)

    monkeypatch.setattr(hub_server._Handler, "_list", delayed)


# --- search -------------------------------------------------------------------------------------


def test_search_shows_results_with_filters_and_sort(qtbot: Any, window: HubWindow) -> None:
    search(qtbot, window, "tiny")
    rows = {row[0]: row for row in table(window.browser)}
    # GGUF is the default format: the safetensors repo is not listed.
    assert set(rows) == {"tiny-gguf", "tiny-llama-gguf", "tiny-gated"}
    assert rows["tiny-gguf"][2:] == ("openlid-test", "900", "40", "2025-03-01", "mit")
    assert rows["tiny-gated"][6] == "Gated (approval) · llama3"  # the badge, then licence
    assert window.browser.status.text() == (
        "3 models · 1 gated: accept the terms on huggingface.co, then log in above")

    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.format_box.setCurrentText("safetensors")
    assert names(window.browser) == ["tiny-safetensors"]

    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.format_box.setCurrentText("Any format")
    window.browser.author_edit.setText("openlid-test")
    search(qtbot, window, "")
    assert names(window.browser) == ["tiny-gguf", "tiny-safetensors", "big-gguf", "split-gguf"]
    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.sort_box.setCurrentText("Most likes")
    assert names(window.browser)[0] == "big-gguf"


def test_first_show_lists_popular_gguf_models(qtbot: Any, make_window: Any) -> None:
    window = make_window(search_on_show=True)
    with qtbot.waitSignal(window.hub.sig_search_finished, timeout=10_000):
        window.show()
    assert names(window.browser)[0] == "tiny-gguf"  # the most downloaded GGUF repo


def test_more_results_pages_through_the_search(qtbot: Any, window: HubWindow,
                                               hub: HubServer) -> None:
    hub.state.page_size = 2
    search(qtbot, window)
    assert len(names(window.browser)) == 2
    seen = list(names(window.browser))
    while window.browser.more_button.isEnabled():
        with qtbot.waitSignal(window.hub.sig_more_finished):
            window.browser.more_button.click()
        seen = names(window.browser)
    assert len(seen) == len(set(seen)) == 5  # every GGUF repo the client can see, once
    assert "more on the Hub" not in window.browser.status.text()


def test_size_column_shows_the_hubs_parameter_count(qtbot: Any) -> None:
    browser = HubBrowser()
    qtbot.addWidget(browser)
    models = (ModelSummary("meta/Llama-3.1-8B-Instruct"), ModelSummary("x/tiny", params=136),
              ModelSummary("x/tiny-gguf"), ModelSummary("x/small", params=270_000_000,
                                                        size=1 << 30))
    browser.results.set_models(models)
    assert [r[1] for r in table(browser)] == ["8B", "0.000136M", "", "270M · 1.0 GiB"]


def test_params_go_to_the_hub_and_quant_and_file_size_filter_each_page(
        qtbot: Any, window: HubWindow, hub: HubServer) -> None:
    search(qtbot, window, "")
    assert len(names(window.browser)) == 5  # every GGUF repo the client can see
    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.size_box.setCurrentText("4B – 9B")
    assert names(window.browser) == ["split-gguf", "tiny-gated"]
    asked = [r.path for r in hub.requests if r.path.startswith("/api/models?")][-1]
    assert "num_parameters=min%3A4500M%2Cmax%3A9500M" in asked
    assert "filtered on this page" not in window.browser.status.text()

    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.size_box.setCurrentText("Any parameter count")
    window.browser.quant_box.setCurrentText("q8_0")
    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.search()
    assert names(window.browser) == ["tiny-gguf", "split-gguf"]
    assert "filtered on this page by quant: 2 of the 5 the Hub sent matched" in \
        window.browser.status.text()

    with qtbot.waitSignal(window.hub.sig_search_finished):
        window.browser.file_size_box.setCurrentText("Files up to 1 GB")
    rows = table(window.browser)
    assert [r[0] for r in rows] == ["tiny-gguf", "split-gguf"]
    assert all(" · " in r[1] and r[1].endswith("KiB") for r in rows)  # the Q8_0 file's size
    assert "by quant and size" in window.browser.status.text()


def test_hub_format_helpers() -> None:
    assert param_count("Qwen/Qwen3-30B-A3B") == 30e9
    assert param_count("x/TinyLlama-1.1B-Chat") == pytest.approx(1.1e9)
    assert param_count("x/Phi-3.5-mini") is None
    assert format_count(1234) == "1.2k"
    assert format_count(3_400_000) == "3.4M"
    from datetime import datetime, timezone

    now = datetime(2025, 3, 4, 12, tzinfo=timezone.utc)
    assert format_updated("2025-03-01T10:00:00.000Z", now) == "3 days ago"
    assert format_updated("2024-01-01T10:00:00+00:00", now) == "2024-01-01"


def test_a_slow_search_leaves_the_gui_thread_free(qtbot: Any, window: HubWindow,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    slow_search(monkeypatch, "tiny", 1.0)
    ticks: list[float] = []
    heartbeat = QTimer()
    heartbeat.setObjectName("heartbeat")
    heartbeat.timeout.connect(lambda: ticks.append(time.monotonic()))
    heartbeat.start(10)
    try:
        started = time.monotonic()
        with qtbot.waitSignal(window.hub.sig_search_finished, timeout=10_000):
            window.search("tiny")
            returned = time.monotonic() - started
            assert window.browser.status.text() == "Searching…"
    finally:
        heartbeat.stop()
    took = time.monotonic() - started
    assert returned < 0.1, f"search() took {returned:.3f} s on the GUI thread"
    assert took >= 0.9  # the answer really was slow …
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 40
    assert max(gaps) < 0.2


def test_an_older_search_answered_late_is_dropped(qtbot: Any, window: HubWindow,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    slow_search(monkeypatch, "tiny", 0.8)
    pages: list[Any] = []
    window.hub.sig_search_finished.connect(pages.append)
    window.search("tiny")
    with qtbot.waitSignal(window.hub.sig_search_finished, timeout=10_000):
        window.search("big")
    assert names(window.browser) == ["big-gguf"]
    assert window.hub.wait_idle(5000)
    qtbot.wait(100)  # let a (wrongly) delivered answer arrive
    assert names(window.browser) == ["big-gguf"]
    assert len(pages) == 1


# --- the model page -----------------------------------------------------------------------------


def test_opening_a_repo_shows_card_and_grouped_files(qtbot: Any, window: HubWindow) -> None:
    search(qtbot, window, "gguf")
    browser = window.browser
    with qtbot.waitSignals([window.hub.sig_repo_loaded, window.hub.sig_card_loaded]):
        browser.select_row(browser.row_of("openlid-test/split-gguf"))
    page = window.model_page
    rows = page.row_texts()
    assert [r[:3] for r in rows] == [("tiny-Q4_K_M.gguf", "GGUF", "Q4_K_M"),
                                     ("tiny-Q8_0.gguf", "GGUF · 3 shards", "Q8_0")]
    assert [r[4] for r in rows] == ["fits", "fits"]  # kilobytes fit any machine
    assert [r[5] for r in rows] == ["Download", "Download"]
    split = page.files.topLevelItem(1)
    assert [split.child(i).text(0) for i in range(split.childCount())] == [
        f"tiny-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    badge = page.files.itemWidget(split, 4)
    assert badge.toolTip().startswith("Fits: needs roughly model 1.")
    text = page.card.toPlainText()
    assert "A tiny model for Openlid's tests." in text
    assert "license:" not in text  # the YAML front matter is not shown
    assert page.title.text() == "openlid-test/split-gguf"
    assert "licence: mit" in page.meta.text()


def test_safetensors_repo_is_one_unit_and_projectors_get_no_badge(
        qtbot: Any, window: HubWindow) -> None:
    open_repo(qtbot, window, "openlid-test/tiny-safetensors")
    rows = window.model_page.row_texts()
    assert [r[:2] for r in rows] == [("safetensors", "safetensors · 7 files")]
    open_repo(qtbot, window, "openlid-test/tiny-gguf")
    by_name = {r[0]: r for r in window.model_page.row_texts()}
    assert by_name["mmproj-tiny-F16.gguf"][1] == "vision projector"
    assert by_name["mmproj-tiny-F16.gguf"][4] == "–"
    assert by_name["tiny-F16.gguf"][2] == "F16"
    window.model_page.fits_only.setChecked(True)
    hidden = {window.model_page.files.topLevelItem(i).text(0)
              for i in range(window.model_page.files.topLevelItemCount())
              if window.model_page.files.topLevelItem(i).isHidden()}
    assert hidden == {"mmproj-tiny-F16.gguf"}


def test_gated_repo_explains_itself_and_a_token_login_opens_it(
        qtbot: Any, window: HubWindow, whoami: str, token_store: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    with qtbot.waitSignals([window.hub.sig_repo_loaded, window.hub.sig_hub_failed]):
        window.open_repo("openlid-gated/tiny-gated")
    page = window.model_page
    assert "is gated" in page.notice.text
    assert "accept their terms" in page.notice.text
    assert page.login_button.isVisibleTo(page)

    # A token the Hub refuses: said plainly, and the login stays on offer.
    page.login_button.click()
    with qtbot.waitSignal(window.hub.sig_hub_failed, timeout=10_000) as failed:
        page.login_dialog.setTextValue("hf_not_a_real_token")
        page.login_dialog.accept()
    assert failed.args[0] == "login"
    assert "did not accept this token" in page.notice.text
    assert page.login_button.isVisibleTo(page)

    page.login_button.click()
    with qtbot.waitSignals([window.hub.sig_logged_in, window.hub.sig_card_loaded],
                           timeout=10_000):
        page.login_dialog.setTextValue(GRANTED)
        page.login_dialog.accept()
    # huggingface_hub stored the token itself; Openlid never logged it.
    assert (token_store / "token").read_text().strip() == GRANTED
    assert GRANTED not in caplog.text
    assert "A tiny model" in page.card.toPlainText()
    assert page.notice.text.startswith("Logged in")
    # The download manager uses the same stored login.
    with qtbot.waitSignal(window.sig_model_downloaded, timeout=20_000) as done:
        page.download_button("gated-Q4_K_M.gguf").click()
    assert Path(done.args[0]).name == "gated-Q4_K_M.gguf"
    assert Path(done.args[0]).is_file()


def test_private_repo_says_to_log_in(qtbot: Any, window: HubWindow) -> None:
    failures: list[tuple[str, str, str]] = []
    window.hub.sig_hub_failed.connect(lambda *args: failures.append(args))
    window.open_repo("openlid-private/secret")
    qtbot.waitUntil(lambda: len(failures) == 2, timeout=10_000)
    # The files and the card both fail, in either order, and say the same thing.
    assert sorted(f[:2] for f in failures) == [("card", "not_found"), ("repo", "not_found")]
    page = window.model_page
    assert "private and you are not logged in" in page.notice.text
    assert page.login_button.isVisibleTo(page)
    assert not page.retry_button.isVisibleTo(page)


def test_offline_hub_is_explained_and_the_window_keeps_working(
        qtbot: Any, window: HubWindow, hub: HubServer) -> None:
    search(qtbot, window, "tiny")
    open_repo(qtbot, window, "openlid-test/tiny-gguf")
    hub.stop()
    with qtbot.waitSignal(window.hub.sig_hub_failed) as failed:
        window.search("big")
    assert failed.args[:2] == ["search", "offline"]
    status = window.browser.status
    assert "Cannot reach the Hugging Face Hub" in status.text()
    assert status.property("error")
    assert len(names(window.browser)) == 3  # the last results stay to look at

    with qtbot.waitSignal(window.hub.sig_hub_failed) as failed:
        window.browser.select_row(window.browser.row_of("openlid-test/tiny-gguf"))
    assert failed.args[1] == "offline"
    page = window.model_page
    assert "Cannot reach" in page.notice.text
    assert page.retry_button.isVisibleTo(page)
    with qtbot.waitSignal(window.hub.sig_hub_failed):
        page.retry_button.click()  # trying again fails the same way, and nothing breaks
    with qtbot.waitSignal(window.hub.sig_hub_failed):
        window.browser.size_box.setCurrentText("Under 1B")  # the widgets still answer
    assert len(names(window.browser)) == 3


# --- the card -----------------------------------------------------------------------------------


def test_card_fetches_nothing_and_resolves_links(qtbot: Any) -> None:
    card = CardView()
    qtbot.addWidget(card)
    markdown = ("# Title\n\n![benchmark chart](https://example.invalid/chart.png)\n\n"
                '<img src="logo.png" alt="Logo"> [config](config.json) [top](#title)\n')
    shown = card_for_display(markdown)
    assert "![" not in shown
    assert "<img" not in shown
    assert "[🖼 benchmark chart](https://example.invalid/chart.png)" in shown
    card.show_card(markdown, "http://127.0.0.1:1/owner/repo/blob/main/")
    card.show()
    assert "benchmark chart" in card.toPlainText()
    assert card.resolve(QUrl("config.json")).toString() == \
        "http://127.0.0.1:1/owner/repo/blob/main/config.json"
    assert card.loadResource(2, QUrl("https://example.invalid/chart.png")) is None
