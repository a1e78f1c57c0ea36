"""Hardware detection: real RAM figures here, nvidia-smi output parsed."""

from __future__ import annotations

import os

import pytest

from desktop.core.hardware import (
    THREADS_ENV,
    default_threads,
    detect,
    env_threads,
    parse_nvidia_smi,
)


def test_detect_reports_this_machine() -> None:
    info = detect()
    assert info.cores >= 1
    assert info.total_ram_bytes > 0
    assert 0 < info.available_ram_bytes <= info.total_ram_bytes


def test_nvidia_smi_output_is_parsed() -> None:
    gpus = parse_nvidia_smi("NVIDIA H100 80GB HBM3, 81559, 80000\nbad line\n")
    assert len(gpus) == 1
    assert gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[0].total_bytes == 81559 * 1024 * 1024
    assert gpus[0].backend == "CUDA"


def test_openlid_threads_sets_the_automatic_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert (env_threads(), default_threads()) == (3, 3)
    for bad in ("", "0", "-2", "many"):
        monkeypatch.setenv(THREADS_ENV, bad)
        assert env_threads() == 0
        assert default_threads() == max(1, os.cpu_count() or 1)
