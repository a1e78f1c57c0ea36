"""Issue 21's stale views: the server log's "No requests yet" goes when a request arrives; a
library import's refusal goes with the next listing; a load failure's notice goes when a model
loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop.ui.job_service import JobService
from desktop.ui.library.panel import ModelLibraryPanel
from desktop.ui.server import RequestLogView
from tests.ggufmaker import write_tiny_gguf
from tests.ui.test_request_log import _entry, _step

pytestmark = pytest.mark.usefixtures("no_dangling")


def test_no_requests_hint_goes_when_a_request_arrives(qtbot: Any) -> None:
    view = RequestLogView()
    qtbot.addWidget(view)
    assert "No requests yet" in view.summary.text()
    view.add_step(1, _step(0))
    assert "No requests yet" not in view.summary.text()
    view.add_entry(_entry(1, (_step(0),)))
    assert "No requests yet" not in view.summary.text()
    assert "Select a request" in view.summary.text()


def test_an_import_refusal_is_cleared_by_the_next_listing(
        qtbot: Any, home: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    jobs = JobService("openlid-test-jobs")
    panel = ModelLibraryPanel(jobs, models)
    qtbot.addWidget(panel)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    panel.import_file(str(bad))
    qtbot.waitUntil(lambda: "can't be used" in panel.message.text(), timeout=10_000)
    assert panel.message.isVisibleTo(panel)
    write_tiny_gguf(models / "good.gguf")
    with qtbot.waitSignal(panel.sig_scan_finished, timeout=10_000):
        panel.refresh()
    assert not panel.message.isVisibleTo(panel)
    jobs.stop()
    jobs.deleteLater()


def test_crash_banner_says_what_happened_and_what_to_do_with_details_behind_a_link(
        qtbot: Any) -> None:
    from desktop.ui.chat.view import NoticeBar
    from desktop.ui.window.crash_banner import plain_crash

    engine_words = ("The engine process was killed (SIGKILL); when nobody killed it, the system "
                    "ran out of memory. Last engine message: “sched_reserve: failed”. Your "
                    "conversation is kept; press Reload to start the model again.")
    sentence = plain_crash(engine_words)
    assert sentence.startswith("The model stopped because this computer ran out of memory.")
    assert "Reload" in sentence
    assert "SIGKILL" not in sentence
    assert "sched_reserve" not in sentence
    assert plain_crash("The engine process crashed with a segmentation fault (SIGSEGV)."
                       ).startswith("The model stopped unexpectedly.")
    bar = NoticeBar()
    qtbot.addWidget(bar)
    bar.show_notice(sentence, "reload", "Reload", details=engine_words)
    assert bar.label.text() == sentence
    assert bar.details_link.isVisibleTo(bar)
    assert not bar.details.isVisibleTo(bar)
    bar.details_link.linkActivated.emit("details")
    assert bar.details.isVisibleTo(bar)
    assert bar.details.text() == engine_words
    assert "Hide details" in bar.details_link.text()
    bar.show_notice("Plain notice.")
    assert not bar.details_link.isVisibleTo(bar)  # nothing technical to show


def test_long_download_names_are_cut_in_the_middle_and_whole_on_hover(qtbot: Any) -> None:
    from desktop.ui.hub.elided_label import ElidedLabel

    name = "unsloth/tiny-gemma-3-270m-it-GGUF — tiny-gemma-3-270m-it-UD-Q4_K_XL.gguf"
    label = ElidedLabel(name)
    qtbot.addWidget(label)
    label.resize(160, 20)
    shown = label.shown_text()
    assert "…" in shown
    assert shown.endswith("L.gguf")  # the quant at the end stays readable
    assert shown.startswith("unsl")
    assert label.toolTip() == name
    assert label.minimumSizeHint().width() < 160  # it never widens its row
