"""A dying or refused engine never takes the caller down, and the next load works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import load, run


def test_sigkill_mid_generation_reports_crash_then_reload_works(gemma_path: Path) -> None:
    host = EngineHost()
    try:
        assert isinstance(load(host, gemma_path), P.Loaded)
        rid = host.generate((("Once upon a time", False),),
                            SamplerSettings(max_tokens=500, ignore_eos=True))
        crashed = None
        for n, event in enumerate(host.wait(rid, timeout=120)):
            if n == 3:
                host.kill()
            if isinstance(event, P.Crashed):
                crashed = event
        assert crashed is not None
        assert crashed.exit_code == -9
        assert "SIGKILL" in crashed.reason
        assert Path(crashed.log_path).is_file()
        # Nothing restarts by itself; the next load starts a fresh worker.
        assert not host.alive
        assert isinstance(load(host, gemma_path), P.Loaded)
        steps, _ = run(host, "Hello", SamplerSettings(temperature=0, max_tokens=4))
        assert len(steps) == 4
    finally:
        host.shutdown()


def test_bad_file_is_refused_in_plain_words_and_worker_survives(
    tmp_path: Path, gemma_path: Path
) -> None:
    page = tmp_path / "model.gguf"
    page.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    host = EngineHost()
    try:
        event = load(host, page)
        assert isinstance(event, P.EngineError)
        assert event.kind == "invalid_model"
        assert "HTML" in event.message
        pid = host.pid
        assert isinstance(load(host, gemma_path), P.Loaded)
        assert host.pid == pid  # same worker: a refused file never reached llama.cpp
    finally:
        host.shutdown()


def test_generate_without_a_model_is_an_error_not_a_crash() -> None:
    host = EngineHost()
    try:
        events = list(host.wait(host.generate((("hi", False),)), timeout=60))
        assert isinstance(events[-1], P.EngineError)
        assert "no model" in events[-1].message
    finally:
        host.shutdown()


def _openlid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ},
    )


def test_cli_generate_continues_elon_musk(gemma_path: Path) -> None:
    out = _openlid("generate", "--model", str(gemma_path), "--prompt", "Elon Musk is",
                   "--temperature", "0", "--max-tokens", "32")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) >= 8


def test_cli_jsonl_has_the_documented_keys(gemma_path: Path) -> None:
    out = _openlid("generate", "--model", str(gemma_path), "--prompt", "Hello", "--jsonl",
                   "--max-tokens", "3", "--seed", "9", "--top-n", "7")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    steps = [line for line in lines if "step" in line]
    assert len(steps) == 3
    for rec in steps:
        for key in ("step", "token_id", "text", "prob", "raw_rank", "entropy_raw",
                    "entropy_final", "stages"):
            assert key in rec
        assert rec["stages"][0]["name"] == "raw"
        for stage in rec["stages"]:
            assert set(stage) >= {"name", "kept", "mass", "top"}
            assert len(stage["top"]) <= 7
            assert all(set(t) == {"id", "text", "p"} for t in stage["top"])
    assert "done" in lines[-1]


def test_cli_bad_model_exits_2_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "empty.gguf"
    bad.write_bytes(b"")
    out = _openlid("generate", "--model", str(bad), "--prompt", "x")
    assert out.returncode == 2
    assert "empty" in out.stderr
    out = _openlid("inspect", str(bad))
    assert out.returncode == 2
    assert "empty" in out.stderr


def test_cli_inspect_the_real_model(gemma_path: Path) -> None:
    out = _openlid("inspect", str(gemma_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["valid"]
    assert data["architecture"] == "gemma3"
