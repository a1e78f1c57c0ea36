"""packaging/gpu_device.py: the stand-in for the ready model that travels to a GPU machine which
can fetch nothing. Its header is the ready model's byte for byte and its tensors lie where the
ready model's do, so llama.cpp runs it at the ready model's cost; no two repeats of a quantized
tensor's blocks are alike, so a step's scores tie no more than the ready model's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_device", ROOT / "packaging/gpu_device.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stand_in_is_laid_out_as_the_ready_model(gemma_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    gpu = _module()
    pack = tmp_path / "pack"
    gpu.prepare(pack, gemma_path)
    assert sum(f.stat().st_size for f in pack.iterdir()) < 16 * 2**20  # travels (64 MiB in all)
    out = tmp_path / "model.gguf"
    gpu.model(pack, out)
    assert out.stat().st_size == gemma_path.stat().st_size
    layout = json.loads((pack / gpu.LAYOUT).read_text())["tensors"]
    real, stand_in = gemma_path.read_bytes(), out.read_bytes()
    first = layout[0]["offset"]
    assert real[:first] == stand_in[:first]  # metadata, tokenizer, each tensor's type and place
    one_of_each = {t["type"]: t for t in reversed(layout)}  # each type's first tensor
    assert set(one_of_each) >= {"F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"}
    for t in one_of_each.values():
        start, sample, block = t["offset"], t["sample"], t["block"]
        assert stand_in[start: start + sample] == real[start: start + sample]  # its first blocks
        if t["type"] in gpu.QUANTS and t["bytes"] >= 2 * sample:
            # the next repeat: the same scales, its quantized values in another order
            lo, hi = gpu.QUANTS[t["type"]]
            one = np.frombuffer(stand_in[start: start + sample], np.uint8).reshape(-1, block)
            two = np.frombuffer(stand_in[start + sample: start + 2 * sample],
                                np.uint8).reshape(-1, block)
            assert not np.array_equal(one, two), t["name"]
            keep = np.r_[0:lo, hi:block]
            assert np.array_equal(one[:, keep], two[:, keep]), t["name"]
            assert np.array_equal(np.sort(one[:, lo:hi], axis=1), np.sort(two[:, lo:hi], axis=1))
