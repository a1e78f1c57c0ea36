"""`openlid doctor` reports honestly what went to the GPU (here: nothing, and says why)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_doctor_reports_offload_and_speed(gemma_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "doctor", "--model", str(gemma_path), "--tokens", "8",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    gpu, cpu = report["gpu_run"], report["cpu_run"]
    assert cpu["layers_offloaded"] == 0
    assert cpu["tokens_per_second"] > 0
    # llama.cpp's own assignment, read from the worker's log: Gemma 3 270M's 18 layers and its
    # output layer, each on the CPU here, and the weight buffers that hold them.
    assert cpu["layers_by_device"] == {"CPU": 19}
    # Flash attention "auto" (the default): llama.cpp turns it on for the CPU, and says so.
    assert cpu["flash_attn"] is True
    assert any(name.startswith("CPU") for name in cpu["weights_mib_by_buffer"])
    if not gpu["gpu_offload_supported"]:
        assert gpu["layers_offloaded"] == 0
        assert gpu["layers_by_device"] == {"CPU": 19}
        assert "no GPU backend" in gpu["offload_note"]
        assert report["auto_gpu_layers"] == 0
    else:
        assert gpu["layers_offloaded"] > 0 or gpu["offload_note"]
    # The capture's pass over the scores, as the engine will run it here.
    from desktop.engine import fused_scan

    expected = {2: "C, AVX-512", 1: "C, AVX2"}.get(fused_scan.level(), "numpy")
    assert report["capture_pass"].startswith(expected)
