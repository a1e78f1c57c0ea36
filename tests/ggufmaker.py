"""Builders of tiny GGUF files for tests: valid ones through `gguf.GGUFWriter`, and raw bytes
for hostile ones that no writer would produce. The files are structurally valid GGUF (real llama
tensor names and metadata keys) but far too small for llama.cpp to run."""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import gguf
import numpy as np

EMBED = 8
TOKENS = ("<unk>", "<s>", "</s>", "▁a", "▁b", "▁c", "a", "b", "c", "d", "e", "f", "g", "h", "i")
ALIGN = gguf.GGUF_DEFAULT_ALIGNMENT


def _tiny_tensors(n_blocks: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {"token_embd.weight": rng.standard_normal((len(TOKENS), EMBED), dtype=np.float32)}
    for i in range(n_blocks):
        tensors[f"blk.{i}.attn_norm.weight"] = np.ones(EMBED, dtype=np.float32)
        tensors[f"blk.{i}.attn_q.weight"] = rng.standard_normal((EMBED, EMBED), dtype=np.float32)
    tensors["output_norm.weight"] = np.ones(EMBED, dtype=np.float32)
    return tensors


def tiny_param_count(n_blocks: int = 1) -> int:
    return sum(t.size for t in _tiny_tensors(n_blocks).values())


def _add_metadata(
    w: gguf.GGUFWriter,
    arch: str,
    name: str,
    n_blocks: int,
    file_type: int,
    tokenizer: str,
    chat_template: str | None,
    named_templates: Mapping[str, str] | None,
) -> None:
    w.add_name(name)
    w.add_uint32(f"{arch}.context_length", 256)
    w.add_uint32(f"{arch}.block_count", n_blocks)
    w.add_uint32(f"{arch}.embedding_length", EMBED)
    w.add_file_type(file_type)
    w.add_tokenizer_model(tokenizer)
    w.add_token_list(list(TOKENS))
    w.add_token_scores([0.0] * len(TOKENS))
    w.add_array("general.tags", ["tiny", "test"])
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for tname, template in (named_templates or {}).items():
        w.add_string(f"tokenizer.chat_template.{tname}", template)


def write_tiny_gguf(
    path: str | os.PathLike[str],
    *,
    arch: str = "llama",
    name: str = "Tiny Llama",
    n_blocks: int = 1,
    file_type: int = gguf.LlamaFileType.ALL_F32,
    tokenizer: str = "llama",
    chat_template: str | None = None,
    named_templates: Mapping[str, str] | None = None,
) -> Path:
    """Write a small, valid GGUF with F32 tensors and llama-style metadata; return its path."""
    out = Path(path)
    w = gguf.GGUFWriter(out, arch)
    _add_metadata(w, arch, name, n_blocks, file_type, tokenizer, chat_template, named_templates)
    for tname, tensor in _tiny_tensors(n_blocks).items():
        w.add_tensor(tname, tensor)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def write_split_gguf(
    folder: str | os.PathLike[str], n_shards: int, stem: str = "tiny"
) -> list[Path]:
    """Write a model split into `n_shards` files named `<stem>-0000k-of-0000n.gguf`."""
    if n_shards < 2:
        raise ValueError("a split model has at least 2 shards")
    base = Path(folder) / f"{stem}.gguf"
    w = gguf.GGUFWriter(base, "llama", split_max_tensors=1)
    n_blocks = max(0, n_shards - 2)  # token_embd + blocks + output_norm = one tensor per shard
    _add_metadata(w, "llama", "Tiny Split", n_blocks, 0, "llama", None, None)
    tensors = _tiny_tensors(n_blocks)
    if n_blocks:  # two tensors per block; keep one so the tensor count equals n_shards
        tensors = {k: v for k, v in tensors.items() if ".attn_q." not in k}
    for tname, tensor in tensors.items():
        w.add_tensor(tname, tensor)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    names = (f"{stem}-{k:05d}-of-{n_shards:05d}.gguf" for k in range(1, n_shards + 1))
    return [base.with_name(name) for name in names]


# --- raw bytes for hostile files ------------------------------------------------------------


def gguf_str(s: str | bytes) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(data)) + data


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    """One metadata entry: key, value type, and the already-encoded value."""
    return gguf_str(key) + struct.pack("<I", vtype) + payload


def kv_string(key: str, value: str) -> bytes:
    return kv(key, gguf.GGUFValueType.STRING, gguf_str(value))


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, gguf.GGUFValueType.UINT32, struct.pack("<I", value))


def tensor_info(name: str, dims: Sequence[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    """One tensor-table entry; `dims` innermost first, as GGUF stores them."""
    packed = struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
    return gguf_str(name) + packed + struct.pack("<IQ", ggml_type, offset)


def raw_gguf(
    kvs: Sequence[bytes] = (),
    tensors: Sequence[bytes] = (),
    *,
    data: bytes = b"",
    version: int = 3,
    n_tensors: int | None = None,
    n_kvs: int | None = None,
) -> bytes:
    """Assemble a GGUF byte string; counts default to the number of entries given."""
    head = b"GGUF" + struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kvs is None else n_kvs,
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    if data:
        body += b"\0" * (-len(body) % ALIGN) + data
    return body


def llama_kvs(arch: str = "llama") -> list[bytes]:
    """The minimum metadata for a raw file to pass the architecture check."""
    return [kv_string("general.architecture", arch), kv_u32(f"{arch}.block_count", 1)]


# --- a model llama.cpp really runs ----------------------------------------------------------

_RUNNABLE_WORDS = ("the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with",
                   "as", "it", "by", "at", "from", "his", "her", "press", "history")


def write_runnable_gguf(
    path: str | os.PathLike[str],
    *,
    n_embd: int = 64,
    n_head: int = 4,
    n_ff: int = 128,
    n_blocks: int = 2,
    context_length: int = 4096,
) -> Path:
    """Write a tiny llama model (random F32 weights, ~0.5 MB) that llama.cpp loads and decodes
    thousands of tokens a second: a SentencePiece vocabulary with byte fallback (any text
    tokenizes), letters and a few words, BOS/EOS, and every tensor a llama block needs."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    letters += [c.upper() for c in letters]
    pieces = list(dict.fromkeys(
        ["▁", *letters, *(f"▁{c}" for c in letters), *(f"▁{w}" for w in _RUNNABLE_WORDS)]
    ))
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *pieces]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * len(pieces)
    n_vocab = len(tokens)
    out = Path(path)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("Tiny Runnable Llama")
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_blocks)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 259 + [-float(i) for i in range(len(pieces))])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    rng = np.random.default_rng(0)

    def weights(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    ones = np.ones(n_embd, dtype=np.float32)
    # numpy shapes are ggml's reversed: (rows = outputs, cols = inputs).
    w.add_tensor("token_embd.weight", weights(n_vocab, n_embd, 0.5))
    for i in range(n_blocks):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", weights(n_embd, n_embd, 0.1))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weights(n_ff, n_embd, 0.1))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weights(n_ff, n_embd, 0.1))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weights(n_embd, n_ff, 0.1))
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", weights(n_vocab, n_embd, 0.5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
