"""Compare's pure core: the plan of runs and their seeds, the first divergent step, each set's
statistics, `--set` specs read into SamplerSettings (and their errors in words), the report as
JSON and as terminal text, and the verb's refusals before any model loads."""

from __future__ import annotations

import json

import pytest

from desktop.cli.compare_text import MARK, format_report, transcripts
from desktop.cli.main import main
from desktop.core.compare import (
    CompareJob,
    CompareReport,
    Sample,
    first_divergence,
    plan_runs,
    sample_seed,
    set_stats,
)
from desktop.core.compare_sets import describe, field_for, parse_set, set_label, spec_of
from desktop.core.sampler_stages import RANDOM_SEED
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage

A = SamplerSettings(temperature=0.0)
B = SamplerSettings(temperature=1.5)


def record(step: int, token: int, text: str, prob: float = 0.5, h_raw: float = 2.0,
           h_final: float = 1.0) -> StepRecord:
    final = StageView("temperature", 2, 1.0, (token, 99), (prob, 1 - prob))
    return StepRecord(step=step, token_id=token, text=text, piece=text, prob=prob,
                      raw_prob=prob, raw_rank=1, entropy_raw=h_raw, entropy_final=h_final,
                      stages=(StageView("raw", 2, 1.0, (token, 99), (prob, 1 - prob)), final),
                      pieces={token: text, 99: "?"})


def done(text: str, reason: str = "length") -> GenerationDone:
    return GenerationDone(reason, text, Usage(3, len(text)), Timings(1, 1, 1, 1))


def sample(set_index: int, n: int, tokens: list[tuple[int, str]], **kw: float) -> Sample:
    steps = tuple(record(i, t, s, **kw) for i, (t, s) in enumerate(tokens))
    return Sample(set_index, n, 7 + n, steps, "".join(s for _, s in tokens), "length")


# --- the plan ------------------------------------------------------------------------------


def test_sample_i_of_every_set_uses_seed_base_plus_i_sample_by_sample() -> None:
    runs = plan_runs([A, B], samples=3, seed=100)
    assert [(r.sample, r.set_index, r.settings.seed) for r in runs] == [
        (0, 0, 100), (0, 1, 100), (1, 0, 101), (1, 1, 101), (2, 0, 102), (2, 1, 102)]
    assert [r.index for r in runs] == list(range(6))
    assert runs[1].settings.temperature == 1.5  # the set's own settings travel with the seed


def test_a_set_with_its_own_seed_keeps_it_and_seeds_wrap_below_random() -> None:
    own = B.replace(seed=5)
    runs = plan_runs([A, own], samples=2, seed=100)
    assert [r.settings.seed for r in runs] == [100, 5, 101, 6]
    assert sample_seed(A, RANDOM_SEED - 1, 1) == 0  # never RANDOM_SEED ("pick one at random")


@pytest.mark.parametrize(("sets", "samples", "seed", "words"), [
    ([A], 1, 0, "two or more"),
    ([A] * 9, 1, 0, "at most 8"),
    ([A, B], 0, 0, "samples must be"),
    ([A, B], 1, -1, "seed must be"),
    ([A, B], 1, RANDOM_SEED, "seed must be"),
    ([A, SamplerSettings(temperature=9.0)], 1, 0, "temperature must be between 0 and 5"),
    ([A, B], 500, 0, "could generate 256,000 tokens; at most 250,000"),
])
def test_a_plan_that_cannot_run_is_refused_in_words(sets: list[SamplerSettings], samples: int,
                                                     seed: int, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        plan_runs(sets, samples, seed)


# --- divergence -----------------------------------------------------------------------------


@pytest.mark.parametrize(("sequences", "expected"), [
    ([[1, 2, 3], [1, 2, 3]], None),
    ([[1, 2, 3], [1, 5, 3]], 1),
    ([[4, 2], [1, 2]], 0),
    ([[1, 2], [1, 2, 3]], 2),  # one ended while the other went on
    ([[1, 2, 3], [1, 2, 3], [1, 2, 9]], 2),  # any set differing counts
    ([[1, 2]], None),
    ([[], []], None),
])
def test_first_divergence(sequences: list[list[int]], expected: int | None) -> None:
    assert first_divergence(sequences) == expected


def test_the_report_names_each_sets_record_at_the_divergent_step() -> None:
    a = sample(0, 0, [(1, "Once"), (2, " upon"), (3, " a")])
    b = sample(1, 0, [(1, "Once"), (5, " there")])
    c = sample(2, 0, [(1, "Once")])
    report = CompareReport("x", (A, B, A), 1, 7, (a, b, c))
    d = report.divergence(0)
    assert d is not None
    assert d.step == 1
    assert d.records[0] is a.steps[1]
    assert d.records[1] is b.steps[1]
    assert d.records[2] is None  # it had ended
    same = CompareReport("x", (A, B), 1, 7, (a, sample(1, 0, [(1, "Once"), (2, " upon"),
                                                                (3, " a")])))
    assert same.divergence(0) is None
    assert CompareReport("x", (A, B), 1, 7, (a,)).divergence(0) is None  # nothing to compare


# --- statistics -----------------------------------------------------------------------------


def test_set_statistics_from_the_records() -> None:
    samples = [
        sample(0, 0, [(1, " the"), (2, " cat")], prob=0.9, h_raw=2.0, h_final=0.5),
        sample(0, 1, [(1, " the"), (3, " dog")], prob=0.5, h_raw=4.0, h_final=1.5),
        sample(0, 2, [(1, " the"), (2, " cat")], prob=0.7, h_raw=3.0, h_final=1.0),
        sample(0, 3, [(4, " a"), (2, " cat"), (2, " cat")], prob=0.1, h_raw=1.0, h_final=1.0),
        Sample(0, 4, 11, (), "", "stop"),  # ended at once: counts as a continuation ("")
    ]
    stats = set_stats("A", samples)
    assert stats.samples == 5
    assert stats.tokens == 9
    assert stats.distinct == 4
    assert [(c.text, c.count) for c in stats.continuations] == [
        (" the cat", 2), (" the dog", 1), (" a cat cat", 1), ("", 1)]
    assert [(t.token_id, t.piece, t.count) for t in stats.first_tokens] == [(1, " the", 3),
                                                                           (4, " a", 1)]
    # Pooled over every generated token: each token weighs the same.
    assert stats.mean_prob == pytest.approx((0.9 * 2 + 0.5 * 2 + 0.7 * 2 + 0.1 * 3) / 9)
    assert stats.mean_entropy_raw == pytest.approx((4 + 8 + 6 + 3) / 9)
    assert stats.mean_entropy_final == pytest.approx((1 + 3 + 2 + 3) / 9)
    assert stats.sample_prob == pytest.approx((0.9, 0.5, 0.7, 0.1))
    assert stats.sample_entropy_final == pytest.approx((0.5, 1.5, 1.0, 1.0))
    empty = set_stats("B", [])
    assert (empty.distinct, empty.mean_prob, empty.mean_entropy_raw) == (0, None, None)


# --- a job from start to report -------------------------------------------------------------


def run_job(job: CompareJob, tokens: dict[int, list[tuple[int, str]]],
            stop_at: int | None = None) -> None:
    while (run := job.start_next()) is not None:
        toks = tokens[run.set_index]
        for i, (t, s) in enumerate(toks):
            job.add_step(record(i, t, s))
        reason = "cancelled" if run.index == stop_at else "length"
        job.finish(done("".join(s for _, s in toks), reason))


def test_a_job_hands_out_runs_and_reports_in_json() -> None:
    job = CompareJob("Hello", (A, B), samples_per_set=2, seed=40)
    assert job.labels == ("A", "B")
    run_job(job, {0: [(1, ","), (2, " world")], 1: [(1, ","), (3, " there")]})
    assert job.finished
    assert job.progress == (4, 4)
    report = job.report()
    assert [s.seed for s in report.samples_of(1)] == [40, 41]
    data = json.loads(json.dumps(report.to_json()))  # plain JSON all the way down
    assert data["seed"] == 40
    assert data["samples_per_set"] == 2
    assert [s["label"] for s in data["sets"]] == ["A", "B"]
    assert data["sets"][1]["spec"] == "temperature=1.5"
    assert data["sets"][0]["samples"][1]["tokens"][1]["text"] == " world"
    assert data["sets"][0]["stats"]["distinct"] == 1
    assert [d["step"] for d in data["divergence"]] == [1, 1]
    at = data["divergence"][0]["sets"]
    assert [(s["label"], s["text"]) for s in at] == [("A", " world"), ("B", " there")]
    assert at[0]["top"][0] == {"id": 2, "text": " world", "p": 0.5}


def test_a_stopped_job_keeps_what_finished_and_says_so() -> None:
    job = CompareJob("Hello", (A, B), samples_per_set=3, seed=1)
    run_job(job, {0: [(1, "x")], 1: [(2, "y")]}, stop_at=2)
    report = job.report()
    assert report.cancelled
    assert len(report.samples) == 3  # the stopped run is kept with what it had
    assert job.start_next() is None
    failed = CompareJob("Hello", (A, B), seed=1)
    failed.start_next()
    failed.add_step(record(0, 1, "x"))
    failed.fail("The engine process was killed (signal 9).")
    assert failed.finished
    assert failed.report().error.startswith("The engine process")
    assert failed.report().samples == ()


# --- setting specs ---------------------------------------------------------------------------


def test_a_spec_changes_what_it_names_and_keeps_the_rest() -> None:
    base = SamplerSettings(max_tokens=12, top_n=20)
    s = parse_set("temperature=0.2, top_p=0.9", base)
    assert (s.temperature, s.top_p, s.max_tokens, s.top_n, s.top_k) == (0.2, 0.9, 12, 20, 40)
    assert parse_set("", base) == base
    # The registry's spellings, request names and stage aliases all work.
    assert parse_set("temp=0.5;top-k=7;minp=0.1;repetition_penalty=1.2;seed=9") == \
        SamplerSettings(temperature=0.5, top_k=7, min_p=0.1, repeat_penalty=1.2, seed=9)
    assert parse_set("mirostat_mode=2").mirostat == 2
    assert parse_set("seed=random").seed == RANDOM_SEED
    assert parse_set("top_k=40.0").top_k == 40
    assert field_for(" Top-P ") == "top_p"
    assert field_for("nucleus") == "top_p"


@pytest.mark.parametrize(("spec", "words"), [
    ("temprature=0.2", "unknown setting 'temprature' (did you mean temperature?)"),
    ("colour=blue", "unknown setting 'colour'; the settings are repeat_penalty"),
    ("temperature=9", "temperature must be between 0 and 5 (0 means greedy)"),
    ("temperature=hot", "temperature must be a number, not 'hot'"),
    ("top_k=4.5", "top_k must be a whole number, not '4.5'"),
    ("top_p=nan", "top_p must be between 0 and 1"),
    ("temperature 0.2", "'temperature 0.2' is not name=value"),
    ("=3", "'=3' is not name=value"),
    ("top_p=", "top_p has no value"),
    ("top_p=0.5,top-p=0.6", "top_p is given twice"),
    ("stop=x", "stop cannot be set per set"),
    ("mirostat=3", "mirostat must be between 0 and 2"),
])
def test_a_bad_spec_names_the_key_or_value(spec: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_set(spec)
    assert str(err.value).startswith(f"set {spec.strip()!r}: ")
    assert words in str(err.value)


def test_specs_and_descriptions_read_back() -> None:
    base = SamplerSettings(max_tokens=12)
    s = parse_set("top_p=0.9,temperature=0.2,repeat_penalty=1.1", base)
    assert spec_of(s, base) == "repeat_penalty=1.1,top_p=0.9,temperature=0.2"
    assert parse_set(spec_of(s, base), base) == s
    assert describe(s) == "T 0.2 · top-k 40 · top-p 0.9 · min-p 0.05 · repeat penalty 1.1"
    # A structured output shapes every set's text: the set says so.
    assert describe(s.replace(structured_output="json")).endswith(
        "repeat penalty 1.1 · grammar: Any JSON")
    assert [set_label(i) for i in (0, 1, 25, 26)] == ["A", "B", "Z", "S27"]


# --- the text report -----------------------------------------------------------------------


def two_sets() -> CompareReport:
    a = sample(0, 0, [(1, "Once"), (2, " upon"), (3, " a"), (4, " time")])
    b = sample(1, 0, [(1, "Once"), (2, " upon"), (5, " the"), (6, " hill")])
    return CompareReport("Tell me", (A, B), 1, 7, (a, b))


def test_transcripts_side_by_side_with_the_divergence_marked() -> None:
    lines = transcripts(two_sets(), width=100)
    assert lines[0].startswith("A · seed 7 · 4 tokens · length")
    assert " │ B · seed 7 · 4 tokens · length" in lines[0]
    assert f"Once upon{MARK} a time" in lines[2]
    assert f"Once upon{MARK} the hill" in lines[2]
    narrow = transcripts(two_sets(), width=50)  # columns would be too narrow: one after another
    assert narrow[0].startswith("A · seed 7")
    assert narrow[1] == f"  Once upon{MARK} a time"
    assert narrow[3].startswith("B · seed 7")
    text = format_report(two_sets(), 100)
    assert "Diverges at step 3 (» marks it): A '␣a' (50%) · B '␣the' (50%)" in text
    assert "A  temperature=0  —  T 0 · top-k 40" in text
    assert "Per set" not in text  # one sample: no statistics


def test_samples_add_a_statistics_table_and_continuations() -> None:
    job = CompareJob("Hi", (A, B), samples_per_set=3, seed=7)
    run_job(job, {0: [(1, " x")], 1: [(2, " y"), (3, " z")]})
    text = format_report(job.report(), 120)
    assert "Per set, over 3 samples" in text
    assert "A    1 / 3     '␣x' 3" in text
    assert "2.00 bits → 1.00 bits  50%" in text
    assert "The sets diverge in 3 of 3 samples, at step 1 earliest, 1 latest." in text
    assert "     3 × ' y z'" in text


# --- the verb refuses bad input before loading a model ----------------------------------------


@pytest.mark.parametrize(("argv", "words"), [
    (["--set", "temperature=0.2"], "compare needs two or more --set"),
    (["--set", "temperature=0.2", "--set", "tempreature=1"], "did you mean temperature?"),
    (["--set", "top_k=1", "--set", "top_k=2", "--samples", "0"], "samples must be"),
    (["--set", "top_k=1", "--set", "top_k=2", "--max-tokens", "0"], "max_tokens must be"),
])
def test_the_verb_refuses_bad_flags_in_words(argv: list[str], words: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--prompt", "Hi", "--model", "/nonexistent.gguf", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("openlid: ")
    assert words in err
