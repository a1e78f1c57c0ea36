"""`openlid search | files | download` against the local Hub (desktop.cli.hub)."""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
from pathlib import Path

import pytest

from desktop.cli.hub import HUB_HANDLERS, add_hub_parsers, choose_units, main
from desktop.core.hub.client import HubClient
from tests.hub.conftest import BIG_FILE, BIG_REPO, repo_by_id
from tests.hub.repos import FakeRepo
from tests.hub.server import HubServer


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))  # a queue of its own


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_and_text(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "search", "tiny", "--format", "gguf", "--json")
    assert code == 0
    rows = json.loads(out)["models"]
    assert rows[0]["repo_id"] == "openlid-test/tiny-gguf"
    assert "openlid-test/tiny-safetensors" not in {r["repo_id"] for r in rows}
    code, out, _ = _run(capsys, "search", "--author", "openlid-gated")
    assert code == 0
    assert out.startswith("openlid-gated/tiny-gated")
    assert out.rstrip().endswith("gated")
    code, out, _ = _run(capsys, "search", "--sort", "likes", "--limit", "1")
    assert out.split()[0] == "openlid-test/big-gguf"  # most likes


def test_files_lists_models_with_quant_and_shards(hub: HubServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "files", "openlid-test/split-gguf")
    assert code == 0
    line = next(x for x in out.splitlines() if x.strip().startswith("tiny-Q8_0.gguf"))
    assert "Q8_0" in line
    assert "3 shards" in line
    assert "tiny-Q8_0-00003-of-00003.gguf" in out
    assert "other files: .gitattributes" in out or "other files: README.md" in out
    code, out, _ = _run(capsys, "files", "openlid-test/tiny-safetensors", "--json")
    data = json.loads(out)
    (unit,) = data["units"]
    assert unit["kind"] == "safetensors"
    assert all(f["sha256"] or f["blob_id"] for f in unit["files"])


def test_files_of_a_private_repo_explains(hub: HubServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "files", "openlid-private/secret")
    assert code == 1
    assert "private and you are not logged in" in err


def test_download_by_quant(hub: HubServer, tmp_path: Path, fake_repos: list[FakeRepo],
                           capsys: pytest.CaptureFixture[str]) -> None:
    hub.faults.throttle_bps = 3_000_000  # long enough for a progress line
    code, out, err = _run(capsys, "download", BIG_REPO, "--quant", "q4_k_m",
                          "--dest", str(tmp_path / "m"))
    assert code == 0, err
    path = Path(out.strip())
    assert path == tmp_path / "m" / BIG_FILE
    want = repo_by_id(fake_repos, BIG_REPO).files[BIG_FILE].sha256
    assert hashlib.sha256(path.read_bytes()).hexdigest() == want
    assert "%" in err
    assert "MiB" in err
    # Again: the verified file is kept, nothing is fetched.
    served = hub.served(BIG_FILE)
    code, out, _ = _run(capsys, "download", BIG_REPO, "--dest", str(tmp_path / "m"))
    assert code == 0
    assert hub.served(BIG_FILE) == served


def test_download_a_shard_brings_the_whole_model(hub: HubServer, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "download", "openlid-test/split-gguf",
                          "tiny-Q8_0-00002-of-00003.gguf", "--dest", str(tmp_path))
    assert code == 0, err
    assert [Path(p).name for p in out.split()] == [
        f"tiny-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


def test_download_needs_a_clear_choice(hub: HubServer, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "download", "openlid-test/tiny-gguf", "--quant", "Q2_K",
                        "--dest", str(tmp_path))
    assert code == 2
    assert "available: F16, Q4_K_M, Q8_0" in err
    code, _, err = _run(capsys, "download", "openlid-test/tiny-gguf", "--dest", str(tmp_path))
    assert code == 2
    assert "several models" in err
    assert "tiny-Q8_0.gguf (Q8_0)" in err
    code, _, err = _run(capsys, "download", "openlid-test/tiny-gguf", "nope.gguf",
                        "--dest", str(tmp_path))
    assert code == 2
    assert "no file nope.gguf" in err
    assert not list(tmp_path.iterdir())


def test_download_refusals_and_offline(hub: HubServer, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "download", "openlid-gated/tiny-gated", "--dest", str(tmp_path))
    assert code == 1
    assert "is gated" in err
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, _, err = _run(capsys, "files", BIG_REPO, "--endpoint", dead)
    assert code == 1
    assert "Cannot reach the Hugging Face Hub" in err


def test_choose_units_defaults_to_the_only_model(hub: HubServer) -> None:
    with HubClient() as client:
        st = client.repo("openlid-test/tiny-safetensors")
        big = client.repo(BIG_REPO)
    assert [u.kind for u in choose_units(st, [], None)] == ["safetensors"]
    assert [u.name for u in choose_units(big, [], None)] == [BIG_FILE]
    (readme,) = choose_units(big, ["README.md"], None)
    assert [f.path for f in readme.files] == ["README.md"]


def test_verbs_mount_on_another_parser(hub: HubServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="openlid")
    add_hub_parsers(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["files", BIG_REPO, "--endpoint", hub.url, "--json"])
    assert set(HUB_HANDLERS) == {"search", "files", "download"}
    assert HUB_HANDLERS[args.verb](args) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["repo_id"] == BIG_REPO
