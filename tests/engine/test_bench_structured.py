"""`openlid bench --structured` end to end on a tiny model llama.cpp really runs
(tests/ggufmaker.py: byte fallback, so the grammar always has a token to allow), so the
benchmark cannot rot: each side's rate, tokens and finish, the ratios, the JSON checks, the table.
Figures are checked for presence and sense, never for speed (tests never assert timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.bench.grammar import format_grammar_report
from desktop.cli.main import EXIT_BAD_INPUT
from tests.ggufmaker import write_runnable_gguf


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_runnable_gguf(tmp_path_factory.mktemp("bench") / "tiny-runnable.gguf")


def _bench(model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "desktop",
            "bench",
            "--structured",
            "--model",
            str(model),
            "--threads",
            "1",
            "--tokens",
            "12",
            "--repeat",
            "1",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_structured_bench_reports_each_side_against_unconstrained(tiny_model: Path) -> None:
    out = _bench(tiny_model, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # progress goes to stderr: stdout is the JSON alone
    assert "round 1/1 done" in out.stderr
    assert (report["tokens"], report["rounds"], report["threads"]) == (12, 1, 1)
    assert list(report["sides"]) == ["none", "json", "json_schema"]
    free = report["sides"]["none"]
    # Unconstrained, end-of-text is ignored: exactly the tokens asked for.
    assert (free["tokens"], free["finish_reason"]) == (12, "length")
    assert "ratio" not in free
    for side in ("json", "json_schema"):
        row = report["sides"][side]
        tps = row["tokens_per_second"]
        assert isinstance(tps, float), (side, row)
        assert math.isfinite(tps), (side, row)
        assert tps > 0, (side, row)
        assert 1 <= row["tokens"] <= 12
        assert row["finish_reason"] in ("stop", "length")
        assert row["ratio"] == pytest.approx(tps / free["tokens_per_second"], rel=0.01)
        # Random weights rarely close the JSON in 12 tokens; when they do, it parses.
        assert row["parses"] is (row["finish_reason"] == "stop")
    for key in ("load_average_before", "load_average_after"):
        assert report[key] is None or len(report[key]) == 3
    table = format_grammar_report(report)
    for words in ("structured output:", "without", "any JSON", "JSON schema", "of without"):
        assert words in table


def test_structured_bench_refuses_a_model_it_cannot_run_in_words(tmp_path: Path) -> None:
    missing = _bench(tmp_path / "missing.gguf")
    assert missing.returncode == EXIT_BAD_INPUT
    assert "openlid: the engine refused" in missing.stderr
    assert "Traceback" not in missing.stderr
