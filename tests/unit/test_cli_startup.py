"""A verb's run imports only what that verb needs: `openlid inspect FILE` does not load the Hub
client, the download manager, numpy or the server (desktop.cli.main builds only the named verb's
parser), while `--help` and a word that is no verb still list every verb."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest

from desktop.cli.main import VERBS, build_parser, verb_named

HEAVY = ("desktop.core.hub.client", "desktop.core.downloads.manager", "desktop.core.gpu_layers",
         "desktop.engine.host", "desktop.server.config", "desktop.cli.hub", "numpy", "gguf")


def _imported_after(code: str) -> set[str]:
    """The HEAVY modules a fresh interpreter holds after running `code`."""
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120, env={**os.environ})
    last = out.stdout.splitlines()[-1] if out.stdout.strip() else ""  # after any help text
    return {m for m in last.split(",") if m in HEAVY}


@pytest.mark.parametrize("argv", [["inspect", "model.gguf"], ["inspect", "--help"],
                                  ["doctor", "--help"], ["db", "check"]])
def test_a_verb_imports_only_what_it_needs(argv: list[str]) -> None:
    code = ("from desktop.cli.main import build_parser\n"
            "try:\n"
            f"    build_parser({argv!r}).parse_args({argv!r})\n"
            "except SystemExit:\n"
            "    pass")
    assert _imported_after(code) == set()


def test_doctor_and_download_load_their_heavy_parts_when_they_run() -> None:
    code = ("import desktop.cli.doctor, desktop.cli.hub\n"
            "from desktop.cli.main import build_parser\n"
            "build_parser(['doctor']).parse_args(['doctor'])")
    held = _imported_after(code)
    assert "desktop.core.gpu_layers" not in held
    assert "desktop.engine.host" not in held
    assert "desktop.core.downloads.manager" not in held


def _help(argv: list[str]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
            pytest.raises(SystemExit):
        build_parser(argv).parse_args(argv)
    return buf.getvalue()


@pytest.mark.parametrize("argv", [["--help"], ["no-such-verb"], []])
def test_help_and_unknown_words_list_every_verb(argv: list[str]) -> None:
    assert "{" + ",".join(VERBS) + "}" in _help(argv)  # the usage line, in VERBS' order


def test_the_verb_named_is_the_first_word_that_is_not_an_option() -> None:
    assert verb_named(["inspect", "--json", "f.gguf"]) == "inspect"
    assert verb_named(["--version"]) is None
    assert verb_named(["models.gguf"]) is None
    assert verb_named(["download", "owner/name"]) == "download"
    # a verb's parser alone: its own help, not another verb's
    text = _help(["download", "--help"])
    assert "usage: openlid download" in text
    assert "--concurrency" in text
