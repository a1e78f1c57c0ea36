"""`openlid bench` end to end on a tiny model llama.cpp really runs (tests/ggufmaker.py), so the
benchmark cannot rot: every chain's row, both sides' prompt processing and first token, the
replay, and prompts no KV cache has seen. Figures are checked for presence and sense, never for
speed (tests never assert timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.bench import llama_bench as lb
from desktop.bench.chains import CHEAP_TARGET, bench_chains
from desktop.bench.engine import format_report
from desktop.cli.main import EXIT_BAD_INPUT, main
from tests.ggufmaker import write_runnable_gguf, write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_runnable_gguf(tmp_path_factory.mktemp("bench") / "tiny-runnable.gguf")


def _bench(model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop", "bench", "--model", str(model), "--threads", "1",
         "--tokens", "4", "--repeat", "1", *extra],
        capture_output=True, text=True, timeout=240, check=False,
    )


def _positive(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_bench_reports_every_chain_with_the_same_tokens_on_every_side(tiny_model: Path) -> None:
    out = _bench(tiny_model, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # progress goes to stderr: stdout is the JSON alone

    chains = bench_chains()
    assert list(report["chains"]) == [c.name for c in chains]
    assert {"greedy", "default", "base_model", "full_vocab", "typical", "dry", "top_n_sigma", "xtc",
            "dynatemp", "mirostat_v1", "mirostat_v2"} <= set(report["chains"])
    for chain in chains:
        row = report["chains"][chain.name]
        for key in ("reference_tokens_per_second", "engine_capture_off_tokens_per_second",
                    "engine_capture_on_tokens_per_second", "reference_first_token_ms",
                    "engine_first_token_ms", "replay_ms", "reference_sample_ms",
                    "engine_capture_off_sample_ms", "engine_capture_on_sample_ms"):
            assert _positive(row[key]), (chain.name, key, row[key])
        ratio = row["engine_capture_on_tokens_per_second"] / row["reference_tokens_per_second"]
        assert row["ratio_capture_on_vs_reference"] == pytest.approx(ratio)
        assert row["target"] == chain.target
        assert row["meets_target"] is (ratio >= chain.target)
        # The three sides got the same prompt, chain and seed: the engine's draws are
        # llama.cpp's own, so every side sampled the same tokens.
        assert row["same_tokens"] is True, chain.name

    pp = report["prompt_processing"]
    assert pp["tokens"] == 512
    assert _positive(pp["reference_tokens_per_second"])
    assert _positive(pp["engine_tokens_per_second"])
    assert report["replay"]["context_tokens"] == 900
    assert _positive(report["replay"]["worst_ms"])
    # Every round had a prompt of its own, and the engine's cache was replaced between its two
    # runs: neither side found more than BOS in its KV cache, so time to first token includes
    # the prompt on both sides.
    assert report["reused_prompt_tokens_max"] == {"reference": 1, "engine": 1}
    assert set(report["load_average"]) == {"before", "max", "after"}
    assert report["rounds"] == 1
    assert report["tokens"] == 4

    table = format_report(report)
    for chain in chains:
        assert chain.name in table
        # One counted round: its paired ratio is the best-of ratio itself.
        by_round = report["chains"][chain.name]["ratio_capture_on_vs_reference_by_round"]
        assert by_round == pytest.approx([report["chains"][chain.name]
                                          ["ratio_capture_on_vs_reference"]])
        assert chain.label in table
    assert "capture on ÷ reference round by round" in table
    assert "prompt processing (512 tokens)" in table
    assert "sampling per token (ms" in table
    assert "900-token context" in table
    assert "llama-bench" in table  # its figure, or where to get it


def test_bench_refuses_bad_arguments_in_words(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    model = str(tmp_path / "never-loaded.gguf")  # checked before anything loads
    assert main(["bench", "--model", model, "--tokens", "1"]) == EXIT_BAD_INPUT
    assert "--tokens must be at least 2" in capsys.readouterr().err
    assert main(["bench", "--model", model, "--repeat", "0"]) == EXIT_BAD_INPUT
    assert "--repeat must be at least 1" in capsys.readouterr().err
    assert main(["bench", "--model", model, "--chains", "default,fastest"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "no such chain: fastest" in err
    assert "greedy, default, base_model, full_vocab" in err  # the names it knows


def test_bench_runs_only_the_chains_asked_for(tiny_model: Path) -> None:
    out = _bench(tiny_model, "--json", "--chains", "xtc, greedy")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert list(report["chains"]) == ["greedy", "xtc"]  # in the table's order
    assert report["chains"]["xtc"]["same_tokens"] is True


def test_bench_refuses_a_model_it_cannot_run(tmp_path: Path) -> None:
    missing = _bench(tmp_path / "missing.gguf")
    assert missing.returncode == EXIT_BAD_INPUT
    assert "openlid: the engine refused" in missing.stderr
    assert "Traceback" not in missing.stderr
    # A structurally valid GGUF llama.cpp cannot run (no attention tensors): refused, in words.
    broken = _bench(write_tiny_gguf(tmp_path / "unrunnable.gguf"))
    assert broken.returncode == EXIT_BAD_INPUT, broken.stderr
    assert "openlid: the engine refused" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_bench_needs_room_for_the_replay_context(tiny_model: Path) -> None:
    out = _bench(tiny_model, "--ctx", "512")
    assert out.returncode == EXIT_BAD_INPUT
    assert "needs a context of at least 908 tokens" in out.stderr


# llama.cpp's llama-bench is built by packaging/llama_bench.sh (~4 minutes), not by the tests: a
# stand-in that answers as it does (its recorded JSON, tests/unit/test_llama_bench.py) checks
# what the bench hands it and makes of its answer; the real one runs where it is built.
_STAND_IN = """#!{python}
import json, sys
open({argv_file!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
{body}
"""


def _stand_in(tmp_path: Path, body: str) -> tuple[Path, Path]:
    script, argv_file = tmp_path / "llama-bench", tmp_path / "argv.jsonl"
    script.write_text(_STAND_IN.format(python=sys.executable, argv_file=str(argv_file),
                                       body=body))
    script.chmod(0o755)
    return script, argv_file


def test_bench_holds_the_cheap_chains_to_llama_benchs_decode(tiny_model: Path,
                                                             tmp_path: Path) -> None:
    answer = 'n = int(sys.argv[sys.argv.index("-n") + 1])\n' \
             'print(json.dumps([{"n_prompt": 0, "n_gen": n, "avg_ts": 1000.0}]))'
    script, argv_file = _stand_in(tmp_path, answer)
    out = _bench(tiny_model, "--json", "--chains", "greedy,full_vocab", "--repeat", "2",
                 "--llama-bench", str(script))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    ceiling = report["llama_bench"]
    assert ceiling["tokens_per_second"] == 1000.0
    assert ceiling["error"] == ""
    runs = [json.loads(line) for line in argv_file.read_text().splitlines()]
    assert len(runs) == 2  # once a counted round (it warms up by itself)
    pairs = dict(zip(runs[0][::2], runs[0][1::2], strict=True))
    assert (pairs["-m"], pairs["-t"], pairs["-n"], pairs["-p"]) == (str(tiny_model), "1", "4",
                                                                    "0")
    assert (pairs["-fa"], pairs["-ctk"], pairs["-ngl"]) == ("auto", "f16", "0")
    for name, row in report["chains"].items():
        ratio = row["engine_capture_on_tokens_per_second"] / 1000.0
        assert row["ratio_capture_on_vs_llama_bench"] == pytest.approx(ratio)
        assert row["ratio_reference_vs_llama_bench"] == pytest.approx(
            row["reference_tokens_per_second"] / 1000.0)
        cheap = next(c for c in bench_chains() if c.name == name).target == CHEAP_TARGET
        # llama-bench samples nothing: only where llama.cpp's own sampling is cheap is the
        # capture held to its decode.
        assert row["meets_llama_bench_target"] is ((ratio >= 0.95) if cheap else None)
        # Paired round by round: one ratio a round against the stand-in's 1000 tok/s, the
        # best of them the best-of ratio.
        by_round = row["ratio_capture_on_vs_llama_bench_by_round"]
        assert len(by_round) == 2
        assert max(by_round) == pytest.approx(ratio)
        assert len(row["ratio_capture_on_vs_reference_by_round"]) == 2
    table = format_report(report)
    assert "llama.cpp's llama-bench, the decode ceiling (tg4 at depth 16" in table
    assert "1000.0 tok/s" in table
    greedy = report["chains"]["greedy"]
    assert f"reference {greedy['ratio_reference_vs_llama_bench']:.3f}" in table


def test_bench_goes_on_without_a_llama_bench_that_fails(tiny_model: Path,
                                                       tmp_path: Path) -> None:
    script, _ = _stand_in(tmp_path, 'sys.exit("error: unknown argument: -d")')
    out = _bench(tiny_model, "--json", "--chains", "greedy", "--llama-bench", str(script))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert "unknown argument: -d" in report["llama_bench"]["error"]
    assert "tokens_per_second" not in report["llama_bench"]
    assert "ratio_capture_on_vs_llama_bench" not in report["chains"]["greedy"]
    assert "llama-bench: no figure (llama-bench" in format_report(report)
    missing = _bench(tiny_model, "--llama-bench", str(tmp_path / "nowhere"))
    assert missing.returncode == EXIT_BAD_INPUT
    assert "--llama-bench " in missing.stderr
    assert "not an executable file" in missing.stderr


@pytest.mark.skipif(not lb.BUILT.is_file(), reason="llama-bench not built here (CI): "
                    "packaging/llama_bench.sh builds it")
def test_bench_runs_the_real_llama_bench_where_it_is_built(tiny_model: Path) -> None:
    out = _bench(tiny_model, "--json", "--chains", "greedy", "--llama-bench", str(lb.BUILT))
    assert out.returncode == 0, out.stderr
    ceiling = json.loads(out.stdout)["llama_bench"]
    assert ceiling["error"] == ""
    assert _positive(ceiling["tokens_per_second"])
