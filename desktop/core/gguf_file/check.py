"""Check a GGUF model file before llama.cpp sees it, and name any defect in plain words.

llama.cpp answers a broken file with one generic "failed to load model" (or a crash in the
worker). `gguf_file.reader` reads each file's header, metadata and tensor table with every count and
length bounded (never tensor data: a multi-GB model is checked through its first few MB); this
module checks what was read against what llama.cpp needs (a split model's shards all present and
belonging together, a known architecture, well-typed keys) and sums it up as a `GgufReport`.
File types and architecture names come from the `gguf` package.

Pure Python, no shared state: call it from any thread or process.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import gguf

from desktop.core.gguf_file.reader import INT_TYPES, GgufProblem, Kv, Parsed, damaged, parse_file

__all__ = ["GgufProblem", "GgufReport", "check_gguf", "known_architectures"]

_VT = gguf.GGUFValueType
_SHOW_CHARS = 256
_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True)
class GgufReport:
    """What a valid GGUF file holds. For a split model the counts, `n_params` and `file_size`
    cover all shards; `split_index` is 0-based (always 0: llama.cpp opens the first shard)."""

    path: str
    file_size: int
    version: int
    tensor_count: int
    kv_count: int
    architecture: str
    name: str
    quant: str
    n_params: int
    context_length: int
    block_count: int
    vocab_size: int
    chat_templates: dict[str, str]
    split_index: int
    split_count: int
    shards: tuple[str, ...]
    metadata: dict[str, object]

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out.update(shards=list(self.shards), chat_templates=dict(self.chat_templates),
                   metadata=dict(self.metadata))
        return out


@functools.cache
def known_architectures() -> frozenset[str]:
    """Architecture names the installed gguf/llama.cpp tooling knows."""
    return frozenset(gguf.MODEL_ARCH_NAMES.values())


def check_gguf(path: str | os.PathLike[str]) -> GgufReport:
    """Validate `path` (the first shard, for a split model); raise `GgufProblem` if unusable."""
    p = os.fspath(path)
    try:
        return _check(p)
    except GgufProblem:
        raise
    except OSError as e:
        raise GgufProblem(f"'{p}' could not be read: {e.strerror or e}.") from e
    except Exception as e:  # the contract is a report or a GgufProblem, whatever the bytes
        raise GgufProblem(f"Openlid could not read this file (internal error: {e!r}).") from e


def _check(p: str) -> GgufReport:
    first = parse_file(p)
    kvs = first.kvs
    split_count, split_no = _get_int(kvs, "split.count", 1), _get_int(kvs, "split.no", 0)
    if split_count < 1 or not 0 <= split_no < split_count:
        raise damaged(f"The split metadata says shard {split_no + 1} of {split_count}")
    parts = [first]
    shards: tuple[str, ...] = (p,)
    if split_count > 1:
        shards = _shard_paths(p, split_no, split_count)
        parts += [_parse_shard(s, k, split_count) for k, s in enumerate(shards) if k > 0]
        declared = _get_int(kvs, "split.tensors.count", -1)
        found = sum(len(part.tensors) for part in parts)
        if declared not in (-1, found):
            raise GgufProblem(f"split model: the shards hold {found:,} tensors but the first "
                              f"shard says there should be {declared:,}.")
    arch = _architecture(kvs)
    prefix = "tokenizer.chat_template"
    templates = {k[len(prefix) + 1 :] or "default": kv.value for k, kv in kvs.items()
                 if (k == prefix or k.startswith(prefix + ".")) and isinstance(kv.value, str)}
    tokens = kvs.get("tokenizer.ggml.tokens")
    n_tokens = tokens.length if tokens is not None and tokens.vtype == _VT.ARRAY else 0
    name = kvs.get("general.name", Kv(_VT.STRING, ""))
    return GgufReport(
        path=p,
        file_size=sum(part.size for part in parts),
        version=first.version,
        tensor_count=sum(len(part.tensors) for part in parts),
        kv_count=len(kvs),
        architecture=arch,
        name=name.value if isinstance(name.value, str) else "",
        quant=_quant_label(kvs.get("general.file_type")),
        n_params=sum(t.n_elements for part in parts for t in part.tensors),
        context_length=_get_int(kvs, f"{arch}.context_length", 0),
        block_count=_get_int(kvs, f"{arch}.block_count", 0),
        vocab_size=_get_int(kvs, f"{arch}.vocab_size", n_tokens),
        chat_templates=templates,
        split_index=split_no,
        split_count=split_count,
        shards=shards,
        metadata={key: _display(kv) for key, kv in kvs.items()},
    )


def _shard_paths(p: str, split_no: int, count: int) -> tuple[str, ...]:
    folder, base = os.path.split(p)
    m = _SPLIT_NAME.match(base)
    if split_no != 0:
        first = f"{m['prefix']}-00001-of-{count:05d}.gguf" if m else "the -00001-of- file"
        raise GgufProblem(f"This is shard {split_no + 1} of {count} of a split model; open the "
                          f"first shard ({first}) instead.")
    if m is None or int(m["no"]) != 1 or int(m["count"]) != count:
        raise GgufProblem(f"split model: this is shard 1 of {count}, but the file name does not "
                          f"end in '-00001-of-{count:05d}.gguf', so llama.cpp cannot find the "
                          "other shards. Rename the files back to their original names.")
    shards = tuple(os.path.join(folder, f"{m['prefix']}-{k:05d}-of-{count:05d}.gguf")
                   for k in range(1, count + 1))
    missing = [k for k, s in enumerate(shards, start=1) if not os.path.exists(s)]
    if missing:
        k, more = missing[0], f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise GgufProblem(f"split model: shard {k} of {count} ({os.path.basename(shards[k - 1])})"
                          f" is missing{more}. Download all shards into the same folder.")
    return shards


def _parse_shard(path: str, index: int, count: int) -> Parsed:
    label = f"split model: shard {index + 1} of {count} ({os.path.basename(path)})"
    try:
        part = parse_file(path)
    except GgufProblem as e:
        raise GgufProblem(f"{label}: {e}") from e
    no, n = _get_int(part.kvs, "split.no", -1), _get_int(part.kvs, "split.count", -1)
    if (no, n) != (index, count):
        raise GgufProblem(f"{label} does not belong with the first shard (its metadata says "
                          f"shard {no + 1} of {n}).")
    return part


def _get_int(kvs: dict[str, Kv], key: str, default: int) -> int:
    kv = kvs.get(key)
    if kv is None:
        return default
    if kv.vtype not in INT_TYPES:
        kind = _VT(kv.vtype).name
        raise damaged(f"Metadata key '{key}' should hold a whole number, not a {kind}")
    return int(kv.value)


def _architecture(kvs: dict[str, Kv]) -> str:
    kv = kvs.get("general.architecture")
    if kv is not None and kv.vtype != _VT.STRING:
        raise damaged("The 'general.architecture' entry is not text")
    if kv is None or not kv.value:
        raise GgufProblem("The file has no 'general.architecture' entry, so llama.cpp cannot "
                          "tell which kind of model it is.")
    arch: str = kv.value
    if arch == "clip":
        raise GgufProblem("This is a vision projector (mmproj) file for a multimodal model, not "
                          "a language model. Open the main model file instead.")
    if arch not in known_architectures():
        raise GgufProblem(f"The model architecture '{arch}' is not supported by this version of "
                          "llama.cpp; a newer Openlid may support it.")
    return arch


def _quant_label(kv: Kv | None) -> str:
    if kv is None or kv.vtype not in INT_TYPES:
        return ""
    try:
        name = gguf.LlamaFileType(int(kv.value) & ~gguf.LlamaFileType.GUESSED).name
    except ValueError:
        return ""
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _display(kv: Kv) -> object:
    """A JSON-friendly, bounded view of one metadata value."""
    if kv.value is None:  # too long to keep
        if kv.vtype == _VT.ARRAY:
            return f"<{kv.length:,} {_VT(kv.subtype).name.lower()} values>"
        return f"<string of {kv.length:,} bytes>"
    return [_shown(v) for v in kv.value] if kv.vtype == _VT.ARRAY else _shown(kv.value)


def _shown(value: Any) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or infinity
    if isinstance(value, str) and len(value) > _SHOW_CHARS:
        return f"{value[:_SHOW_CHARS]}… ({len(value):,} characters)"
    return value
