"""llama.cpp's llama-bench as `openlid bench`'s decode ceiling: finding the binary, the command
it gets (the engine's load settings, as llama.cpp takes them) and reading its JSON answer.

RUN_JSON is llama-bench's own `-o json` answer, recorded on this project's machine from the one
packaging/llama_bench.sh builds (llama.cpp of llama-cpp-python 0.3.36), trimmed of fields the
bench does not read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.bench import llama_bench as lb
from desktop.core.model_info import LoadSettings, ModelInfo

RUN_JSON = """[
  {
    "build_commit": "0c1e570",
    "cpu_info": "AMD EPYC",
    "backends": "CPU",
    "model_type": "gemma3 270M Q4_K - Medium",
    "n_threads": 2,
    "type_k": "f16",
    "type_v": "f16",
    "n_gpu_layers": 0,
    "flash_attn": -1,
    "n_prompt": 0,
    "n_gen": 16,
    "n_depth": 13,
    "avg_ns": 185163425,
    "stddev_ns": 0,
    "avg_ts": 86.410154,
    "stddev_ts": 0.000000,
    "samples_ns": [ 185163425 ],
    "samples_ts": [ 86.4102 ]
  }
]"""


def _info(offloaded: int = 0) -> ModelInfo:
    return ModelInfo(path="/m.gguf", architecture="gemma3", name="g", n_params=1, quant="Q4_K_M",
                     size_bytes=1, n_vocab=262_144, n_ctx_train=32_768, n_ctx=4096, n_layer=18,
                     n_layers_offloaded=offloaded)


def test_the_tg_rate_is_read_from_llama_benchs_json() -> None:
    assert lb.read_tokens_per_second(RUN_JSON) == pytest.approx(86.410154)
    # A pp test first (n_gen 0) and then the tg one: the tg one is the decode rate.
    both = json.loads(RUN_JSON)
    pp = {**both[0], "n_prompt": 512, "n_gen": 0, "avg_ts": 1000.0}
    assert lb.read_tokens_per_second(json.dumps([pp, both[0]])) == pytest.approx(86.410154)


@pytest.mark.parametrize("answer", ["", "error: model not found", "[]", '[{"n_gen": 8}]',
                                    '[{"n_gen": 8, "avg_ts": 0}]', '{"n_gen": 8}'])
def test_an_answer_it_cannot_read_is_said_in_words(answer: str) -> None:
    with pytest.raises(lb.LlamaBenchError, match="llama-bench"):
        lb.read_tokens_per_second(answer)


def test_the_command_carries_the_engines_load_settings() -> None:
    settings = LoadSettings(n_threads=3, flash_attn="off", kv_cache_type="f32")
    bench = lb.llama_bench(Path("/opt/llama-bench"), "/m.gguf", settings, _info(), 64)
    args = bench.command()
    assert args[0] == "/opt/llama-bench"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs == {"-m": "/m.gguf", "-t": "3", "-p": "0", "-n": "64", "-d": str(lb.DEPTH),
                     "-r": "1", "-fa": "off", "-ngl": "0", "-ctk": "f32", "-ctv": "f32",
                     "-o": "json"}
    # Automatic threads are the engine's own default; the GPU layers the engine really offloaded.
    auto = lb.llama_bench(Path("/b"), "/m.gguf", LoadSettings(), _info(offloaded=19), 8).args
    assert auto[auto.index("-t") + 1] == str(lb.default_threads())
    assert auto[auto.index("-fa") + 1] == "auto"
    assert auto[auto.index("-ngl") + 1] == "19"


def test_the_binary_asked_for_the_environments_or_the_checkouts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lb.ENV, raising=False)
    monkeypatch.setattr(lb, "BUILT", tmp_path / "build" / "llama-bench")
    assert lb.find_binary(None) is None  # none built: the bench says how to get one
    built = tmp_path / "build" / "llama-bench"
    built.parent.mkdir()
    built.write_text("#!/bin/sh\n")
    assert lb.find_binary(None) is None  # not executable
    built.chmod(0o755)
    assert lb.find_binary(None) == built
    other = tmp_path / "other-llama-bench"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv(lb.ENV, str(other))
    assert lb.find_binary(None) == other
    assert lb.find_binary(str(built)) == built  # the flag before the environment
    with pytest.raises(lb.LlamaBenchError, match=r"--llama-bench .*nothing-here: not an"):
        lb.find_binary(str(tmp_path / "nothing-here"))
    monkeypatch.setenv(lb.ENV, str(tmp_path))  # a folder
    with pytest.raises(lb.LlamaBenchError, match=r"\$OPENLID_LLAMA_BENCH .*: not an executable"):
        lb.find_binary(None)


def test_a_failing_run_is_said_with_its_last_line(tmp_path: Path) -> None:
    script = tmp_path / "llama-bench"
    script.write_text("#!/bin/sh\necho 'main: error: failed to load model' >&2\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(lb.LlamaBenchError,
                       match="failed with exit status 1: main: error: failed to load model"):
        lb.LlamaBench(script, ()).run()
    missing = lb.LlamaBench(tmp_path / "gone", ())
    with pytest.raises(lb.LlamaBenchError, match="did not run"):
        missing.run()


def test_a_ratio_that_misses_is_never_printed_as_its_target() -> None:
    from desktop.bench.engine import _ratio

    assert _ratio(0.99974, 1.0) == "0.9997"  # not "1.000" beside the word MISSED
    assert _ratio(0.94951, 0.95) == "0.9495"
    assert _ratio(1.0, 1.0) == "1.000"
    assert _ratio(0.9312, 0.95) == "0.931"
    assert _ratio(1.1404, 1.0) == "1.140"
