"""`openlid remote …` and `--model remote:<id>`: the real CLI, run as subprocesses, against a real
llama-cpp-python server (and Openlid's own server where a key is needed) on loopback.

Every CLI run here shares one OPENLID_HOME for this module, so entries added by one command are
seen by the next, as they would be in a terminal. Every run's output is checked for the keys;
the last test looks for them in every file the runs left behind (engine logs included).
Generations stay a few tokens long: llama-cpp-python computes logprobs slowly on Gemma's 262k
vocabulary (FACTS.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.remote.client import RemoteEngine, RemoteModel
from tests.server.conftest import API_KEY, LoggedServer
from tests.server.test_remote_engine import llama_server

__all__ = ["llama_server"]  # the module fixture, shared with test_remote_engine.py

SECRET = "sk-cli-never-shown-0123456789"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openlid-cli-remote-home")


@pytest.fixture(scope="module")
def llama_model_id(llama_server: str) -> str:
    return RemoteEngine(RemoteModel(llama_server, "?")).list_models()[0]


def cli(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """`openlid ARGS` in a fresh process; its output must never hold a key."""
    # TMPDIR too: the engine writes its logs under the temp folder, and the last test reads them.
    tmp = home / "tmp"
    tmp.mkdir(exist_ok=True)
    run_env = {**os.environ, "OPENLID_HOME": str(home), "TMPDIR": str(tmp), **(env or {})}
    out = subprocess.run(
        [sys.executable, "-m", "desktop", *args], input=stdin, capture_output=True, text=True,
        env=run_env, cwd=REPO, timeout=240, check=False,
    )
    for key in (SECRET, API_KEY):
        assert key not in out.stdout, args
        assert key not in out.stderr, args
    return out


def add(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = cli(home, "remote", "add", *args, env=env)
    assert out.returncode == 0, out.stderr
    path = out.stdout.strip()
    assert path.startswith("remote:")
    assert "\n" not in path  # stdout holds the path alone
    return path


def listed(home: Path) -> dict[str, dict[str, object]]:
    out = cli(home, "remote", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {str(e["path"]): e for e in json.loads(out.stdout)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the store: add, list, edit, check, remove ---


def test_add_list_edit_check_remove(home: Path, llama_server: str, llama_model_id: str) -> None:
    path = add(home, llama_server, llama_model_id, "--key", SECRET, "--name", "Far Gemma",
               "--check")
    entry = listed(home)[path]
    assert entry == {
        "id": path.removeprefix("remote:"), "path": path, "name": "Far Gemma",
        "display_name": "Far Gemma", "base_url": llama_server, "model": llama_model_id,
        "llama_extras": True, "has_key": True,
    }
    text = cli(home, "remote", "list")
    assert f"{path}  Far Gemma" in text.stdout
    assert "(key)" in text.stdout

    ok = cli(home, "remote", "check", path)
    assert ok.returncode == 0, ok.stderr
    assert f"ok: {llama_server} answers, key accepted, and serves '{llama_model_id}'" in ok.stdout

    edited = cli(home, "remote", "edit", path, "--name", "Renamed", "--no-key",
                 "--no-llama-extras", "--check")
    assert edited.returncode == 0, edited.stderr
    entry = listed(home)[path]  # the id, and so the path, stays
    assert (entry["display_name"], entry["has_key"], entry["llama_extras"]) == (
        "Renamed", False, False)
    refused = cli(home, "remote", "edit", path, "--model", "no-such-model", "--check")
    assert refused.returncode == 1
    assert "not changed" in refused.stderr
    assert listed(home)[path]["model"] == llama_model_id

    bare_id = path.removeprefix("remote:")
    gone = cli(home, "remote", "remove", bare_id)
    assert gone.returncode == 0, gone.stderr
    assert path not in listed(home)
    again = cli(home, "remote", "check", path)
    assert again.returncode == 2
    assert "no remote model" in again.stderr


def test_add_check_refuses_a_model_the_endpoint_does_not_serve(
    home: Path, llama_server: str, llama_model_id: str
) -> None:
    before = listed(home)
    out = cli(home, "remote", "add", llama_server, "no-such-model", "--check")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "not added" in out.stderr
    assert "serves no model named 'no-such-model'" in out.stderr
    assert f"it lists: {llama_model_id}" in out.stderr
    assert listed(home) == before


def test_bad_input_is_refused_before_anything_is_stored(home: Path) -> None:
    before = listed(home)
    bad_url = cli(home, "remote", "add", "ftp://somewhere/v1", "m")
    assert bad_url.returncode == 2
    assert "is not an http(s) URL" in bad_url.stderr
    no_env = cli(home, "remote", "add", "http://127.0.0.1:1/v1", "m", "--key-env",
                 "OPENLID_TEST_UNSET_VARIABLE")
    assert no_env.returncode == 2
    assert "OPENLID_TEST_UNSET_VARIABLE is not set" in no_env.stderr
    unknown = cli(home, "remote", "remove", "remote:0123456789ab")
    assert unknown.returncode == 2
    assert "no remote model with id '0123456789ab'" in unknown.stderr
    assert listed(home) == before


def test_check_says_why_in_words(home: Path, server: LoggedServer) -> None:
    wrong = add(home, server.base_url, server.model_id, "--key", SECRET)
    out = cli(home, "remote", "check", wrong)
    assert out.returncode == 1
    assert "answered 401: the API key was refused" in out.stderr

    keyless = add(home, server.base_url, server.model_id)
    out = cli(home, "remote", "check", keyless)
    assert out.returncode == 1
    assert "the endpoint needs an API key" in out.stderr

    right = add(home, server.base_url, server.model_id, "--key-env", "OPENLID_TEST_KEY",
                "--check", env={"OPENLID_TEST_KEY": API_KEY})
    out = cli(home, "remote", "check", right)
    assert out.returncode == 0, out.stderr
    assert "key accepted" in out.stdout

    port = free_port()
    url = f"http://user:{SECRET}@127.0.0.1:{port}/v1?key={SECRET}"
    down = add(home, url, "m", "--key", SECRET)
    out = cli(home, "remote", "check", down)
    assert out.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1" in out.stderr
    assert "is the server running" in out.stderr
    assert listed(home)[down]["base_url"] == f"http://127.0.0.1:{port}/v1"
    for path in (wrong, keyless, right, down):
        assert cli(home, "remote", "remove", path).returncode == 0


# --- using an entry as a model ---


def test_generate_jsonl_through_a_remote_entry_has_the_raw_stage_only(
    home: Path, llama_server: str, llama_model_id: str
) -> None:
    path = add(home, llama_server, llama_model_id, "--key", SECRET)
    out = cli(home, "generate", "--model", path, "--prompt", "The capital of France is",
              "--temperature", "0", "--max-tokens", "3", "--jsonl")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    steps, done = lines[:-1], lines[-1]["done"]
    assert len(steps) == 3
    for i, step in enumerate(steps):
        assert step["step"] == i
        assert [stage["name"] for stage in step["stages"]] == ["raw"]
        assert 0 < step["prob"] <= 1
    assert done["finish_reason"] == "length"
    assert done["text"] == "".join(step["text"] for step in steps)

    plain = cli(home, "generate", "--model", path, "--prompt", "The capital of France is",
                "--temperature", "0", "--max-tokens", "3")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == done["text"] + "\n"  # greedy: the same three tokens


def test_chat_through_a_remote_entry(home: Path, llama_server: str, llama_model_id: str) -> None:
    path = add(home, llama_server, llama_model_id, "--name", "Far Gemma")
    out = cli(home, "chat", "--model", path, "--template", "gemma", "--temperature", "0",
              "--max-tokens", "3", stdin="Hello there\n/quit\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[Far Gemma, template Gemma")
    assert "3 generated, length]" in out.stdout


def test_what_needs_a_local_model_says_so(home: Path, tmp_path: Path) -> None:
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "hi"}]), encoding="utf-8")
    runs = {
        "token counts need a local model file": (
            "template", "render", "--model", "remote:0123456789ab", "--messages", str(messages)),
        "carries no template of its own": ("template", "list", "--model", "remote:0123456789ab"),
        "bench measures llama.cpp on this machine and needs a local model file": (
            "bench", "--model", "remote:0123456789ab"),
        "doctor measures GPU offload": ("doctor", "--model", "remote:0123456789ab"),
    }
    for words, args in runs.items():
        out = cli(home, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert words in out.stderr, out.stderr


def test_keys_never_reach_a_file_other_than_the_store(home: Path) -> None:
    """Runs last in this module: every command above wrote its files (and, through TMPDIR, its
    engine logs) under this home."""
    store = home / "data" / "remote_models.json"
    files = [p for p in home.rglob("*") if p.is_file() and p != store]
    assert any(p.suffix == ".log" for p in files), files  # the engine's logs were written
    for p in files:
        data = p.read_bytes()
        for key in (SECRET, API_KEY):
            assert key.encode() not in data, p
    if store.exists():
        assert store.stat().st_mode & 0o077 == 0  # the store is the owner's alone
