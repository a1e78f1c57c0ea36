"""The base-model defaults on the ready Gemma 3 270M (base): greedy, it falls into a loop on a
plain prompt; with Openlid's base-model repeat penalty it does not. Also: the shipped file has no
chat template and no author values, so it is treated as a base model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from desktop.core import model_defaults as md
from desktop.core.gguf_file.check import check_gguf
from desktop.core.sampling import SamplerSettings
from desktop.engine.host import EngineHost
from tests.engine.conftest import run

# Greedy, 96 tokens: the model repeats "to practice it." over and over without a penalty.
PROMPT = "The best way to learn a language is"
GREEDY = SamplerSettings(temperature=0.0, max_tokens=96, seed=1)


def most_repeats(tokens: list[int], n: int = 8) -> int:
    """How often the most frequent run of `n` tokens occurs."""
    runs = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return max(runs.values(), default=0)


def test_the_ready_model_is_a_base_model_without_author_values(gemma_path: Path) -> None:
    report = check_gguf(gemma_path)
    assert md.is_base_model(report.architecture, report.chat_templates)
    assert md.read_author_values(gemma_path) is None
    assert md.author_values_from_gguf(report.metadata) is None


@pytest.mark.engine
def test_the_base_model_repeat_penalty_stops_the_loop(engine: EngineHost) -> None:
    plain, done = run(engine, PROMPT, GREEDY)
    assert done.finish_reason == "length"
    tokens = [r.token_id for r in plain]
    assert most_repeats(tokens) >= 3, done.text  # the loop the defaults are for

    penalised, done = run(engine, PROMPT, GREEDY.replace(**md.BASE_MODEL_VALUES))
    tokens = [r.token_id for r in penalised]
    assert len(tokens) >= 64, done.text
    assert most_repeats(tokens) < 3, done.text
    # The penalty is what the chart shows for every step: the stage ran.
    assert all(any(s.name == "penalties" for s in r.stages) for r in penalised)
