"""Compare on the real engine and the shipped Gemma model: temperature 0 against 1.5 on the same
seed diverge at a step where the raw distributions still agree; two greedy sets write the same
text; equal settings on equal seeds draw the same tokens; and `openlid compare --json` end to
end in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli.compare import run_compare
from desktop.core.compare import CompareJob, CompareReport
from desktop.core.sampling import SamplerSettings
from desktop.engine.host import EngineHost

pytestmark = pytest.mark.engine

PROMPT = "Once upon a time"
BASE = SamplerSettings(max_tokens=8, top_n=20)


def compare(engine: EngineHost, *sets: SamplerSettings, samples: int = 1) -> CompareReport:
    report, failure = run_compare(engine, CompareJob(PROMPT, sets, samples_per_set=samples,
                                                     seed=7, base=BASE), timeout=120)
    assert failure is None, failure
    assert not report.cancelled
    assert len(report.samples) == len(sets) * samples
    return report


def test_temperature_0_and_1_5_diverge_where_the_raw_softmax_still_agrees(
        engine: EngineHost) -> None:
    # The engine is shared by the session's tests: first leave this prompt in its KV cache, so
    # both runs below reuse it alike (llama.cpp's logits for a position decoded in a batch differ
    # slightly from the same position decoded alone, so the runs must start from equal caches).
    compare(engine, BASE.replace(temperature=0.0), BASE.replace(temperature=0.0))
    report = compare(engine, BASE.replace(temperature=0.0), BASE.replace(temperature=1.5))
    greedy, hot = report.sample(0, 0), report.sample(1, 0)
    assert greedy is not None
    assert hot is not None
    assert greedy.seed == hot.seed == 7
    d = report.divergence(0)
    assert d is not None, (greedy.text, hot.text)
    k = d.step
    assert greedy.token_ids[:k] == hot.token_ids[:k]
    assert greedy.token_ids[k] != hot.token_ids[k]
    assert d.records == (greedy.steps[k], hot.steps[k])
    # Up to and at the divergence both saw the same context: the same raw softmax.
    for a, b in zip(greedy.steps[: k + 1], hot.steps[: k + 1]):
        assert a.stages[0].ids == b.stages[0].ids
        assert a.stages[0].probs == pytest.approx(b.stages[0].probs, rel=1e-4, abs=1e-6)
    # Greedy took the raw argmax from a one-token final distribution; 1.5 drew from a wider one.
    assert all(r.raw_rank == 1 and r.prob == pytest.approx(1.0) for r in greedy.steps)
    assert hot.steps[k].raw_rank > 1
    assert hot.steps[k].entropy_final > greedy.steps[k].entropy_final
    stats = report.stats()
    assert stats[0].mean_prob == pytest.approx(1.0)
    assert stats[1].mean_prob is not None
    assert stats[1].mean_prob < 1.0


def test_two_greedy_sets_write_the_same_text(engine: EngineHost) -> None:
    report = compare(engine, BASE.replace(temperature=0.0),
                     BASE.replace(temperature=0.0, top_p=0.5, top_k=3), samples=2)
    for n in range(2):
        assert report.divergence(n) is None
        a, b = report.sample(0, n), report.sample(1, n)
        assert a is not None
        assert b is not None
        assert a.text == b.text
        assert a.token_ids == b.token_ids
        assert len(a.steps) > 0
    assert [s.distinct for s in report.stats()] == [1, 1]  # greedy ignores the seed too


def test_equal_settings_on_equal_seeds_draw_the_same_tokens(engine: EngineHost) -> None:
    hot = BASE.replace(temperature=1.3, top_k=0, top_p=1.0, min_p=0.0)
    report = compare(engine, hot, hot, samples=2)
    for n in range(2):
        a, b = report.sample(0, n), report.sample(1, n)
        assert a is not None
        assert b is not None
        assert a.seed == b.seed == 7 + n
        assert a.token_ids == b.token_ids
    # A different seed is a different draw: the two samples of a set differ.
    assert report.stats()[0].distinct == 2


def test_openlid_compare_json_end_to_end(gemma_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "compare", "--model", str(gemma_path),
         "--ctx", "512", "--prompt", PROMPT, "--set", "temperature=0",
         "--set", "temperature=1.5,top_p=0.9", "--samples", "2", "--max-tokens", "6",
         "--seed", "7", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ), check=False)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["prompt"] == PROMPT
    assert data["seed"] == 7
    assert [s["spec"] for s in data["sets"]] == ["temperature=0", "top_p=0.9,temperature=1.5"]
    for s in data["sets"]:
        assert [x["seed"] for x in s["samples"]] == [7, 8]
        assert all(1 <= len(x["tokens"]) <= 6 for x in s["samples"])
        assert s["stats"]["samples"] == 2
        assert 0.0 < s["stats"]["mean_prob"] <= 1.0
    greedy = data["sets"][0]
    assert greedy["stats"]["distinct"] == 1
    assert greedy["samples"][0]["text"] == greedy["samples"][1]["text"]
    for d in data["divergence"]:
        first = [x["tokens"] for x in (s["samples"][d["sample"]] for s in data["sets"])]
        assert [t["token_id"] for t in first[0][: d["step"]]] == \
            [t["token_id"] for t in first[1][: d["step"]]]
        assert {x["label"] for x in d["sets"]} == {"A", "B"}
        assert all(x["ended"] or x["top"] for x in d["sets"])
