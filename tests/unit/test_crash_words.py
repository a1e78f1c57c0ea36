"""Exit statuses and worker logs become words a person can act on."""

from __future__ import annotations

from desktop.engine.crash import describe_exit, telling_line


def test_signals_are_named() -> None:
    assert "SIGKILL" in describe_exit(-9)
    assert "memory" in describe_exit(-9)
    assert "GGML_ASSERT" in describe_exit(-6)
    assert "segmentation" in describe_exit(-11)
    assert "status 3" in describe_exit(3)


def test_telling_line_prefers_the_cause_over_the_last_line() -> None:
    log = [
        "load_tensors: loading model",
        "ggml/src/ggml.c:1234: GGML_ASSERT(n > 0) failed",
        "ptrace: Operation not permitted.",
        "No stack.",
    ]
    assert "GGML_ASSERT" in telling_line(log)
    cuda = ["CUDA error: out of memory", "GGML_ASSERT(x) failed", "Aborted"]
    assert telling_line(cuda).startswith("CUDA error")
    assert telling_line(["just a line", ""]) == "just a line"
    assert telling_line([]) == ""
