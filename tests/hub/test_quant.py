"""Quant labels, shard names and model grouping, from file names alone (desktop.core.hub.quant)."""

from __future__ import annotations

import pytest

from desktop.core.hub.quant import (
    KIND_GGUF,
    KIND_PROJECTOR,
    KIND_SAFETENSORS,
    group_files,
    is_projector,
    quant_label,
    shard_name,
)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("mistral-7b-instruct-v0.2.Q8_0.gguf", "Q8_0"),
        ("phi-2.q5_k_s.gguf", "Q5_K_S"),
        ("gemma-3-270m-it-F16.gguf", "F16"),
        ("model-fp16.gguf", "F16"),
        ("Qwen2.5-0.5B-Instruct-BF16.gguf", "BF16"),
        ("model-IQ4_XS.gguf", "IQ4_XS"),
        ("model-IQ2_XXS.gguf", "IQ2_XXS"),
        ("model-IQ4_NL.gguf", "IQ4_NL"),
        ("Qwen3-8B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("model-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("model-TQ1_0.gguf", "TQ1_0"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("model.f32.gguf", "F32"),
        ("subdir/Q3_K_L/model-Q3_K_L-00001-of-00002.gguf", "Q3_K_L"),
        ("Qwen2-7B-Instruct-Q6_K.gguf", "Q6_K"),  # "Qwen2" is not a quant
        ("model-Q4_K_M_imatrix.gguf", "Q4_K_M"),  # trailing words stay out
        ("model.gguf", None),
        ("README.md", None),
        ("AQ4_0B.gguf", None),  # not a separate word
    ],
)
def test_quant_label(name: str, label: str | None) -> None:
    assert quant_label(name) == label


def test_shard_name() -> None:
    shard = shard_name("dir/Llama-Q8_0-00002-of-00003.gguf")
    assert shard is not None
    assert (shard.stem, shard.index, shard.count, shard.ext) == ("Llama-Q8_0", 2, 3, "gguf")
    assert shard_name("model-00001-of-00004.safetensors") is not None
    assert shard_name("model-00000-of-00003.gguf") is None  # 1-based
    assert shard_name("model-00004-of-00003.gguf") is None
    assert shard_name("model-Q4_K_M.gguf") is None


def test_group_files_splits_singles_projectors_and_safetensors() -> None:
    groups = group_files([
        "README.md", ".gitattributes", "m-Q4_K_M.gguf", "mmproj-m-F16.gguf",
        "m-Q8_0-00002-of-00002.gguf", "m-Q8_0-00001-of-00002.gguf",
        "config.json", "tokenizer.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model.safetensors.index.json", "images/x.png",
    ])
    by_name = {g.name: g for g in groups}
    assert by_name["m-Q4_K_M.gguf"].paths == ("m-Q4_K_M.gguf",)
    split = by_name["m-Q8_0.gguf"]
    assert split.kind == KIND_GGUF
    assert split.quant == "Q8_0"
    assert split.is_split
    assert split.complete
    assert split.paths == ("m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf")
    assert by_name["mmproj-m-F16.gguf"].kind == KIND_PROJECTOR
    st = by_name["safetensors"]
    assert st.kind == KIND_SAFETENSORS
    assert st.complete
    assert set(st.paths) == {
        "config.json", "tokenizer.json", "model.safetensors.index.json",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
    }
    assert all("README.md" not in g.paths for g in groups)
    assert [g.kind for g in groups][-1] == KIND_SAFETENSORS  # GGUF models first


def test_incomplete_split_is_flagged() -> None:
    (group,) = group_files(["x-Q4_0-00001-of-00003.gguf", "x-Q4_0-00003-of-00003.gguf"])
    assert not group.complete
    (st,) = group_files(["model-00001-of-00003.safetensors"])
    assert not st.complete


def test_is_projector() -> None:
    assert is_projector("mmproj-model-f16.gguf")
    assert is_projector("dir/Model-MMPROJ.gguf")
    assert not is_projector("model-Q4_K_M.gguf")
