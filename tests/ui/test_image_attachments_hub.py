"""Vision pairing in the Hub window (issue #20), against the local Hub (tests/hub): downloading a
GGUF from a repo that ships a projector (mmproj) fetches the projector beside it, so the library
shows the model as vision-capable and the engine loads them together."""

# Fixtures come from tests.ui.hub_helpers by import, so their names reappear as parameters.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop.core.library import catalog
from desktop.core.vision import projector_beside
from desktop.ui.hub import HubWindow
from tests.ui.hub_helpers import (  # noqa: F401 - fixtures
    MakeWindow,
    _hub_env,
    fake_repos,
    hub,
    make_window,
    open_repo,
    token_store,
    window,
)

pytestmark = [
    pytest.mark.usefixtures("no_dangling"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

REPO = "openlid-test/tiny-gguf"


def test_a_gguf_download_brings_its_projector(
    qtbot: Any, window: HubWindow, tmp_path: Path
) -> None:
    open_repo(qtbot, window, REPO, card=False)
    with qtbot.waitSignal(window.sig_model_downloaded, timeout=20_000) as done:
        window.model_page.download_button("tiny-Q4_K_M.gguf").click()
    folder = tmp_path / "models" / "openlid-test" / "tiny-gguf"
    model = folder / "tiny-Q4_K_M.gguf"
    assert Path(done.args[0]) == model
    assert (folder / "mmproj-tiny-F16.gguf").is_file()  # fetched with the model
    assert not (folder / "tiny-Q8_0.gguf").exists()  # and nothing else
    assert projector_beside(model) == folder / "mmproj-tiny-F16.gguf"
    [entry] = [m for m in catalog.scan(tmp_path / "models") if Path(m.path) == model]
    assert entry.vision
