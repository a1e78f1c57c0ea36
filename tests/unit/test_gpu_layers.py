"""GPU layers "auto" and the real layer assignment read from llama.cpp's load log.

The log texts are llama.cpp's own lines: the CPU one recorded from this machine's engine log
(Gemma 3 270M, 18 layers + output), the GPU ones written from the format strings in the vendored
llama.cpp's src/llama-model.cpp (`load_tensors`: "layer %3d assigned to device %s, is_swa = %d",
"offloaded %d/%d layers to GPU", "%12s model buffer size = %8.2f MiB").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core import fit
from desktop.core.gpu_layers import (
    offload_note,
    read_flash_attention,
    read_offload,
    resolve_gpu_layers,
)
from desktop.core.model_info import GPU_LAYERS_AUTO, LoadSettings
from desktop.core.sampling import SettingsError

GiB = 1 << 30


def _assigned(devices: list[str]) -> str:
    return "".join(f"load_tensors: layer {il:3d} assigned to device {dev}, is_swa = 0\n"
                   for il, dev in enumerate(devices))


CPU_LOG = ("load_tensors: loading model tensors, this can take a while... (load_mode = mmap)\n"
           + _assigned(["CPU"] * 19)
           + "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB\n"
           "load_tensors:   CPU_REPACK model buffer size =    12.66 MiB\n")

# -ngl 999 asked, but the device ran out: llama.cpp still echoes "offloaded 19/19".
PARTIAL_GPU_LOG = ("load_tensors: loading model tensors, this can take a while... (load_mode = "
                   "mmap)\n" + _assigned(["CPU"] * 7 + ["CUDA0"] * 12)
                   + "load_tensors: offloading output layer to GPU\n"
                   "load_tensors: offloading 18 repeating layers to GPU\n"
                   "load_tensors: offloaded 19/19 layers to GPU\n"
                   "load_tensors:        CUDA0 model buffer size =   160.20 MiB\n"
                   "load_tensors:   CPU_Mapped model buffer size =    87.61 MiB\n")

TWO_GPUS_LOG = _assigned(["CUDA0"] * 10 + ["CUDA1"] * 9)


def test_the_real_assignment_not_the_echo_is_read() -> None:
    seen = read_offload(PARTIAL_GPU_LOG)
    assert seen is not None
    assert (seen.layers, seen.on_gpu) == (19, 12)  # not the echoed 19/19
    assert seen.devices == (("CPU", 7), ("CUDA0", 12))
    assert seen.buffers_mib == (("CUDA0", 160.2), ("CPU_Mapped", 87.61))
    note = offload_note(-1, -1, True, 18, seen)
    assert "only 12 of the 19 layers" in note
    assert "CUDA0 12" in note


def test_cpu_only_and_several_gpus() -> None:
    cpu = read_offload(CPU_LOG)
    assert cpu is not None
    assert (cpu.layers, cpu.on_gpu) == (19, 0)
    two = read_offload(TWO_GPUS_LOG)
    assert two is not None
    assert two.on_gpu == 19
    assert two.devices == (("CUDA0", 10), ("CUDA1", 9))
    assert offload_note(-1, -1, True, 18, two) == ""  # all 18 layers + output, as asked
    assert "12 of 19 layers fit" in offload_note(GPU_LAYERS_AUTO, 12, True, 18,
                                                 read_offload(PARTIAL_GPU_LOG))


def test_only_the_last_load_counts_and_no_lines_means_unknown() -> None:
    seen = read_offload(PARTIAL_GPU_LOG + "\nllama_context: ...\n" + CPU_LOG)
    assert seen is not None
    assert seen.on_gpu == 0
    assert read_offload("load_tensors: offloaded 19/19 layers to GPU\n") is None
    assert "unknown" in offload_note(-1, -1, True, 18, None)


def test_auto_is_the_default_and_resolves_to_zero_without_a_gpu(tmp_path: Path) -> None:
    assert LoadSettings().n_gpu_layers == GPU_LAYERS_AUTO
    with pytest.raises(SettingsError, match="-2 = auto"):
        LoadSettings(n_gpu_layers=-3).validated()
    model = tmp_path / "m.gguf"
    model.write_bytes(b"not read")
    auto = LoadSettings()
    assert resolve_gpu_layers(str(model), auto, supports_gpu=False) == 0
    assert resolve_gpu_layers(str(model), auto, supports_gpu=True, vram_free=0) == 0
    assert resolve_gpu_layers(str(model), auto.replace(n_gpu_layers=7), supports_gpu=False) == 7
    assert "no GPU backend" in offload_note(GPU_LAYERS_AUTO, 0, False, 18, None)
    assert "no free GPU memory" in offload_note(GPU_LAYERS_AUTO, 0, True, 18, None)
    assert offload_note(0, 0, True, 18, None) == ""


def test_auto_takes_as_many_layers_as_fit_in_free_vram() -> None:
    shape = fit.ModelShape(n_layer=31, n_ctx_train=8192, n_embd_k=1024, n_embd_v=1024,
                           n_vocab=128_000, n_head=32)
    settings = LoadSettings(n_ctx=4096)
    size = 4 * GiB
    total = fit.estimate_fit(size, settings.replace(n_gpu_layers=-1), shape, 64 * GiB).total_bytes
    everything = fit.auto_gpu_layers(size, settings, shape, 24 * GiB)
    assert everything == 32  # 31 layers + output: all of it
    half = fit.auto_gpu_layers(size, settings, shape, int(total / 2 / 0.75))
    assert half in (15, 16)
    assert fit.auto_gpu_layers(size, settings, shape, None) == 0
    assert fit.auto_gpu_layers(size, settings, shape, 1 << 20) == 0
    # The estimate of an "auto" load puts exactly that share on the GPU.
    est = fit.estimate_fit(size, settings, shape, 64 * GiB, vram_available=int(total / 2 / 0.75))
    assert est.vram_bytes == int(est.total_bytes * fit.offload_fraction(half, 31))
    cpu = fit.estimate_fit(size, settings, shape, 64 * GiB)
    assert cpu.vram_bytes == 0
    assert cpu.ram_bytes == cpu.total_bytes


# llama_context resolving flash attention "auto" (src/llama-context.cpp, resolve_fused_ops:
# "%s: %s enabled" / "%s: %s not supported, set to disabled" with the probe "Flash Attention").
FA_ON_LOG = "llama_context: flash_attn            = auto\nsched_reserve: Flash Attention enabled\n"
FA_OFF_LOG = ("llama_context: flash_attn            = auto\n"
              "sched_reserve: Flash Attention not supported, set to disabled\n")


def test_what_flash_attention_auto_came_to_is_read_from_the_log() -> None:
    assert read_flash_attention(FA_ON_LOG, "auto") is True
    assert read_flash_attention(FA_OFF_LOG, "auto") is False
    assert read_flash_attention(FA_OFF_LOG + FA_ON_LOG, "auto") is True  # the last load's
    assert read_flash_attention("llama_context: n_ctx = 4096\n", "auto") is None  # not said
    # Required by a quantized V cache, auto is turned on before anything is resolved.
    required = ("llama_init_from_model: enabling flash_attn since it is required for quantized V "
                "cache\nllama_context: flash_attn            = enabled\n")
    assert read_flash_attention(required, "auto") is True
    # Asked outright, it is what was asked: llama.cpp has nothing to resolve.
    assert read_flash_attention(FA_OFF_LOG, "on") is True
    assert read_flash_attention(FA_ON_LOG, "off") is False
