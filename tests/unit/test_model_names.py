"""core.library.names: one name per model — the file, its quant when the file name does not say
it, and the repo (or folder) it came from, read from the path alone."""

from __future__ import annotations

from desktop.core.library.names import model_name


def test_hub_downloads_are_named_by_file_and_repo() -> None:
    name = model_name("/m/unsloth/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf", "Q4_K_M",
                      models_dir="/m")
    assert name.title == "gemma-3-270m-it-Q4_K_M"  # the file already says the quant
    assert name.origin == "unsloth/gemma-3-270m-it-GGUF"
    assert name.display == "gemma-3-270m-it-Q4_K_M · unsloth/gemma-3-270m-it-GGUF"


def test_the_quant_is_added_when_the_file_name_does_not_say_it() -> None:
    assert model_name("/m/org/repo/model.gguf", "Q8_0", models_dir="/m").title == "model Q8_0"
    assert model_name("/m/org/repo/model-q8_0.gguf", "Q8_0", models_dir="/m").title == (
        "model-q8_0")  # any case and separators


def test_split_files_subfolders_caches_and_other_places() -> None:
    split = model_name("/m/org/repo/Q4_K_M/big-Q4_K_M-00001-of-00003.gguf", "Q4_K_M",
                       models_dir="/m")
    assert (split.title, split.origin) == ("big-Q4_K_M", "org/repo")
    cache = model_name("/home/u/.cache/huggingface/hub/models--Qwen--Qwen2-0.5B-GGUF/snapshots/"
                       "abc/qwen2-0_5b-q4_0.gguf", "Q4_0", source="hf cache")
    assert cache.origin == "Qwen/Qwen2-0.5B-GGUF"
    lm = model_name("/home/u/.lmstudio/models/lmstudio-community/Phi-4-GGUF/phi-4-Q4_K_M.gguf",
                    "Q4_K_M", source="lm studio")
    assert lm.origin == "lmstudio-community/Phi-4-GGUF"
    loose = model_name("/data/elsewhere/m.gguf", "F16", source="imported")
    assert loose.display == "m F16 · elsewhere"
    top = model_name("/m/m.gguf", "", models_dir="/m")
    assert top.display == "m"
    folder = model_name("/m/Qwen/Qwen2-0.5B", "BF16", models_dir="/m")  # safetensors folder
    assert folder.display == "Qwen2-0.5B BF16 · Qwen"
