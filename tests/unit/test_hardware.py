"""Hardware detection: real RAM figures here, nvidia-smi output parsed."""

from __future__ import annotations

from desktop.core.hardware import detect, parse_nvidia_smi


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
