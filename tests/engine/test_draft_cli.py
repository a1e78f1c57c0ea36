"""`openlid generate --draft …` and `openlid bench --draft` end to end on a tiny model llama.cpp
really runs (tests/ggufmaker.py). Figures are checked for presence and sense, never for speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ggufmaker import write_runnable_gguf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_runnable_gguf(tmp_path_factory.mktemp("draft-cli") / "tiny-runnable.gguf")


def _openlid(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *argv], capture_output=True,
                          text=True, timeout=240, check=False)


def _generate(tiny: Path, *draft: str) -> list[dict[str, object]]:
    out = _openlid("generate", "--model", str(tiny), "--threads", "1", "--ctx", "512",
                   "--prompt", "the press and the press and the press and the",
                   "--temperature", "0", "--max-tokens", "24", "--jsonl",
                   *draft)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_generate_with_a_draft_prints_the_proposals_and_the_same_text(tiny: Path) -> None:
    plain = _generate(tiny)
    for draft in (("--draft", "ngram", "--draft-max", "4"),
                  ("--draft-model", str(tiny), "--draft-p-min", "0")):
        lines = _generate(tiny, *draft)
        done = lines[-1]["done"]
        assert isinstance(done, dict)
        assert done["text"] == plain[-1]["done"]["text"]  # type: ignore[index]
        counts = done["draft"]
        assert counts["proposed"] > 0
        steps = lines[:-1]
        accepted = [s for s in steps if s.get("draft_token") == s["token_id"]]
        assert counts["accepted"] == len(accepted)
        assert all(s["draft_piece"] == s["piece"] for s in accepted)
        if draft[0] == "--draft-model":  # the model drafting for itself, greedily: all taken
            assert counts["accepted"] == counts["proposed"]
    assert "draft" not in plain[-1]["done"]  # type: ignore[operator]


def test_bad_draft_flags_are_refused_in_words(tiny: Path) -> None:
    out = _openlid("generate", "--model", str(tiny), "--prompt", "a", "--draft", "model")
    assert out.returncode == 2
    assert "a draft model needs its GGUF file" in out.stderr
    out = _openlid("generate", "--model", str(tiny), "--prompt", "a", "--draft", "ngram",
                   "--draft-max", "0")
    assert out.returncode == 2
    assert "draft tokens must be between 1 and 64" in out.stderr


def test_bench_draft_reports_each_drafting_against_none(tiny: Path) -> None:
    out = _openlid("bench", "--model", str(tiny), "--threads", "1", "--tokens", "8",
                   "--repeat", "1", "--draft", "--draft-model", str(tiny), "--draft-p-min", "0",
                   "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["load_average_before"] is None or len(report["load_average_before"]) == 3
    assert set(report["prompts"]) == {"copying", "prose"}
    for rows in report["prompts"].values():
        assert set(rows) == {"none", "ngram", "model"}
        assert rows["none"]["tokens_per_second"] > 0
        for name in ("ngram", "model"):
            row = rows[name]
            assert row["tokens_per_second"] > 0
            assert row["speedup"] == pytest.approx(
                row["tokens_per_second"] / rows["none"]["tokens_per_second"], rel=0.01)
            assert 0 <= row["accepted"] <= row["proposed"]
            assert row["same_text"] is True  # F32: batches compute as single tokens do
        assert rows["model"]["accepted"] == rows["model"]["proposed"] > 0  # its own draft
