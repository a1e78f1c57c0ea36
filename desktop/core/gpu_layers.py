"""GPU layers: "auto" resolved before a load, and the layers llama.cpp really put on a GPU.

Pure Python (it reads a GGUF's metadata and may ask nvidia-smi for free VRAM); the engine worker
calls it around `llama_model_load_from_file`, and `openlid doctor` reports what it found.

llama.cpp's INFO line "offloaded N/M layers to GPU" only echoes the request (min(asked, n_layer
+ 1), printed whenever the build could offload, even with no device found), so it cannot tell
that fewer layers went. The real assignment is in its load_tensors log: one line per layer,
"layer  il assigned to device NAME" (layers 0 … n_layer - 1 repeat, layer n_layer is the output
layer), and one "NAME model buffer size = X MiB" per weight buffer. Those are read here, and
what flash attention "auto" came to (`read_flash_attention`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from desktop.core.fit import auto_gpu_layers, shape_from_metadata
from desktop.core.gguf_file.check import check_gguf
from desktop.core.gguf_file.reader import GgufProblem
from desktop.core.hardware import detect
from desktop.core.model_info import GPU_LAYERS_ALL, GPU_LAYERS_AUTO, LoadSettings

__all__ = ["Offload", "offload_note", "read_flash_attention", "read_offload",
           "resolve_gpu_layers"]

_START = "load_tensors: layer"
_ASSIGNED = re.compile(r"load_tensors: layer\s+(\d+) assigned to device ([^,\s]+)")
_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s*([\d.]+) MiB")
# llama_context resolving flash attention "auto": "Flash Attention enabled", or "Flash Attention
# not supported, set to disabled" when a layer's device lacks the fused kernel; before that,
# llama_init_from_model turns auto on outright where it is required ("enabling flash_attn since
# it is required for quantized V cache", or for the tensor split mode).
_FLASH = re.compile(r"Flash Attention (enabled|not supported, set to disabled)"
                    r"|(enabling) flash_attn since it is required")
_CPU_NAMES = ("CPU",)  # llama.cpp's CPU device; every other device a layer goes to is a GPU


@dataclass(frozen=True)
class Offload:
    """Where one load put its layers, as llama.cpp's log says it assigned them."""

    layers: int  # the repeating layers plus the output layer
    on_gpu: int  # of those, how many went to a device other than the CPU
    devices: tuple[tuple[str, int], ...]  # (device, layers) in the order first seen
    buffers_mib: tuple[tuple[str, float], ...]  # (buffer, MiB) of the model's weights


def read_offload(log_text: str) -> Offload | None:
    """The last load's layer assignment in `log_text`, or None when the log has no assignment
    lines (they are llama.cpp's DEBUG level; a build or logger that drops them tells nothing)."""
    at = log_text.rfind(f"{_START}   0 assigned")
    if at < 0:
        at = log_text.rfind(f"{_START} 0 assigned")
    if at < 0:
        return None
    text = log_text[at:]
    per_layer: dict[int, str] = {}
    for index, device in _ASSIGNED.findall(text):
        per_layer.setdefault(int(index), device)
    if not per_layer:
        return None
    counts: dict[str, int] = {}
    for device in per_layer.values():
        counts[device] = counts.get(device, 0) + 1
    on_gpu = sum(n for device, n in counts.items() if device not in _CPU_NAMES)
    buffers = tuple((name, float(mib)) for name, mib in _BUFFER.findall(text))
    return Offload(len(per_layer), on_gpu, tuple(counts.items()), buffers)


def read_flash_attention(log_text: str, mode: str) -> bool | None:
    """Whether the context runs flash attention: as asked for "on" and "off"; for "auto" what
    llama.cpp's log of this load says it resolved to (None when the log does not say)."""
    if mode != "auto":
        return mode == "on"
    found = _FLASH.findall(log_text)
    return found[-1][0] != "not supported, set to disabled" if found else None


def resolve_gpu_layers(path: str, settings: LoadSettings, *, supports_gpu: bool,
                       vram_free: int | None = None) -> int:
    """The n_gpu_layers to hand llama.cpp: the number asked, or for "auto" as many layers as
    fit in free VRAM by the fit estimate (0 when the build cannot offload or no GPU is found).
    `vram_free` None: asked of the machine (nvidia-smi, or Apple's unified memory)."""
    if settings.n_gpu_layers != GPU_LAYERS_AUTO:
        return settings.n_gpu_layers
    if not supports_gpu:
        return 0
    if vram_free is None:
        vram_free = detect().free_vram_bytes
    if vram_free <= 0:
        return 0
    try:
        report = check_gguf(path)
        shape = shape_from_metadata(report.metadata, architecture=report.architecture,
                                    n_vocab=report.vocab_size)
        size, n_ctx_train = os.path.getsize(path), report.context_length
    except (GgufProblem, OSError):
        return 0  # the load reports what is wrong with the file
    return auto_gpu_layers(size, settings, shape, vram_free, n_ctx_train=n_ctx_train)


def offload_note(requested: int, resolved: int, supports_gpu: bool, n_layer: int,
                 seen: Offload | None) -> str:
    """Why fewer layers than asked run on the GPU, in plain words ("" when nothing to say).
    `requested`: the setting (-2 auto, -1 all); `resolved`: what llama.cpp was handed."""
    want = n_layer + 1 if resolved == GPU_LAYERS_ALL else min(resolved, n_layer + 1)
    if requested == GPU_LAYERS_AUTO and not supports_gpu:
        return "GPU layers auto: this llama.cpp build has no GPU backend, so every layer runs " \
               "on the CPU"
    if requested == GPU_LAYERS_AUTO and resolved == 0:
        return "GPU layers auto: no free GPU memory was found, so every layer runs on the CPU"
    if want <= 0:
        return ""
    if not supports_gpu:
        return "this llama.cpp build has no GPU backend, so every layer runs on the CPU"
    if seen is None:
        return ("llama.cpp's log does not say where the layers went (its per-layer lines are "
                "missing), so the count on the GPU is unknown")
    if seen.on_gpu < want:
        where = ", ".join(f"{name} {n}" for name, n in seen.devices)
        return (f"only {seen.on_gpu} of the {want} layers asked went to the GPU (llama.cpp "
                f"assigned: {where}; see the engine log)")
    if requested == GPU_LAYERS_AUTO and seen.on_gpu < seen.layers:
        return (f"GPU layers auto: {seen.on_gpu} of {seen.layers} layers fit in free GPU "
                "memory; the rest run on the CPU")
    return ""
