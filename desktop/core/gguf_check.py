"""Check a GGUF model file before llama.cpp sees it, and name any defect in plain words.

llama.cpp answers a broken file with one generic "failed to load model" (or a crash in the
worker), and gguf 0.19's `GGUFReader` has no dimension-count or overflow checks, builds one numpy
view per array element (about 8 s for a 262k-token vocabulary) and loops as long as a forged array
length says. So this module parses the header itself with a bound on every count and length, and
reads tensor *descriptions* only, never tensor data: a multi-GB model is checked by reading its
first few MB (0.2 s for Gemma 3 270M). Value types, ggml types and block sizes, file types and
architecture names come from the `gguf` package.

Plain reads through a window, not mmap: a file that shrinks while it is checked reads short (and
is reported truncated) instead of killing the process with SIGBUS.

Pure Python, no shared state: call it from any thread or process.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import gguf

__all__ = ["GgufProblem", "GgufReport", "check_gguf", "known_architectures"]

_VT = gguf.GGUFValueType
_HEADER_SIZE = 24  # magic b"GGUF", version u32, tensor count u64, kv count u64
_SUPPORTED_VERSIONS = (2, 3)
# Sanity bounds: far above any real model (a few thousand tensors, ~50 keys, 1M-token vocab),
# far below what would make the checker itself hang or run out of memory.
_MAX_TENSORS = _MAX_KVS = 1 << 20
_MAX_KEY_LEN = 1 << 16
_MAX_STRING_LEN = 1 << 28
_MAX_ARRAY_LEN = 1 << 32
_MAX_STRINGS = 1 << 24  # string-array elements walked per file (~0.12 us each)
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_NAME_LEN = 63  # GGML_MAX_NAME minus the terminating NUL
_INT64_MAX = (1 << 63) - 1
_WINDOW = 1 << 20
_KEEP_STRING = 1 << 20  # longer strings are measured, not decoded
_KEEP_ARRAY = 64  # longer arrays are shown by their length only
_SHOW_CHARS = 256
_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")

_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_SCALAR_CODES = {
    _VT.UINT8: "B", _VT.INT8: "b", _VT.UINT16: "H", _VT.INT16: "h", _VT.UINT32: "I",
    _VT.INT32: "i", _VT.FLOAT32: "f", _VT.BOOL: "?", _VT.UINT64: "Q", _VT.INT64: "q",
    _VT.FLOAT64: "d",
}
_SCALARS = {int(t): struct.Struct("<" + c) for t, c in _SCALAR_CODES.items()}
_INT_TYPES = {int(t) for t, c in _SCALAR_CODES.items() if c in "BbHhIiQq"}
_QUANT_SIZES = {int(t): size for t, size in gguf.GGML_QUANT_SIZES.items()}


class GgufProblem(Exception):
    """The file cannot be used as a GGUF model; `str()` says why, in plain words."""


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


@dataclass(frozen=True)
class _Kv:
    vtype: int
    value: Any  # scalar, str, or list for short arrays; None when too long to keep
    length: int = 0  # bytes of a string, elements of an array
    subtype: int = -1  # element type of an array


@dataclass(frozen=True)
class _Tensor:
    name: str
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class _Parsed:
    size: int
    version: int
    kvs: dict[str, _Kv]
    tensors: list[_Tensor]


class _TruncatedError(Exception):
    """Raised with the number of bytes the file would need to have."""


def _printable(text: str) -> str:
    """A key or tensor name fit for a message: bytes from the file may be anything."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:80])
    return shown + ("…" if len(text) > 80 else "")


def _bad(what: str) -> GgufProblem:
    return GgufProblem(f"{what}; the file is damaged.")


def _truncated(needed: int, size: int, detail: str) -> GgufProblem:
    return GgufProblem(f"The file is truncated: expected at least {needed:,} bytes, found "
                       f"{size:,} ({detail}). The download probably stopped early; download "
                       "it again.")


def _check(p: str) -> GgufReport:
    first = _parse_file(p)
    kvs = first.kvs
    split_count, split_no = _get_int(kvs, "split.count", 1), _get_int(kvs, "split.no", 0)
    if split_count < 1 or not 0 <= split_no < split_count:
        raise _bad(f"The split metadata says shard {split_no + 1} of {split_count}")
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
    name = kvs.get("general.name", _Kv(_VT.STRING, ""))
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


def _parse_shard(path: str, index: int, count: int) -> _Parsed:
    label = f"split model: shard {index + 1} of {count} ({os.path.basename(path)})"
    try:
        part = _parse_file(path)
    except GgufProblem as e:
        raise GgufProblem(f"{label}: {e}") from e
    no, n = _get_int(part.kvs, "split.no", -1), _get_int(part.kvs, "split.count", -1)
    if (no, n) != (index, count):
        raise GgufProblem(f"{label} does not belong with the first shard (its metadata says "
                          f"shard {no + 1} of {n}).")
    return part


def _parse_file(p: str) -> _Parsed:
    try:
        st = os.stat(p)
        if stat.S_ISDIR(st.st_mode):
            raise GgufProblem(f"'{p}' is a directory, not a model file.")
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise GgufProblem(f"'{p}' is not a regular file.")
        if st.st_size == 0:
            raise GgufProblem("The file is empty (0 bytes). The download probably failed; "
                              "download it again.")
        f = open(p, "rb")  # noqa: SIM115 - closed by the with below
    except (FileNotFoundError, NotADirectoryError) as e:
        raise GgufProblem(f"File not found: {p}") from e
    except PermissionError as e:
        raise GgufProblem(f"'{p}' cannot be read: permission denied.") from e
    with f:
        head = f.read(512)
        version, n_tensors, n_kvs = _check_header(head, st.st_size)
        parser = _Parser(f, st.st_size)
        try:
            return parser.parse(version, n_tensors, n_kvs)
        except _TruncatedError as e:
            where = f"it ends inside the {parser.section}"
            raise _truncated(e.args[0], st.st_size, where) from None


def _check_header(head: bytes, size: int) -> tuple[int, int, int]:
    if not head.startswith(b"GGUF"):
        if len(head) < 4 and b"GGUF".startswith(head):
            raise _truncated(_HEADER_SIZE, size, "it ends inside the header")
        raise GgufProblem(_not_gguf(head, size))
    if len(head) < _HEADER_SIZE:
        raise _truncated(_HEADER_SIZE, size, "it ends inside the header")
    version, n_tensors, n_kvs = struct.unpack_from("<IQQ", head, 4)
    if version and version & 0xFFFF == 0:  # a small version number, byte-swapped
        raise GgufProblem("This GGUF file is big-endian (made for machines like IBM s390x); "
                          "llama.cpp on this computer needs a little-endian file.")
    if version == 1:
        raise GgufProblem("This is a GGUF version 1 file, an early format llama.cpp no longer "
                          "reads. Download a newer conversion of the model.")
    if version not in _SUPPORTED_VERSIONS:
        raise GgufProblem(f"GGUF version {version} is not supported: this llama.cpp reads "
                          "versions 2 and 3. The file is damaged or from a newer tool.")
    for count, what, limit in ((n_tensors, "tensors", _MAX_TENSORS),
                               (n_kvs, "metadata entries", _MAX_KVS)):
        if count > limit:
            raise _bad(f"The header claims {count:,} {what}, which is not plausible "
                       f"(the limit is {limit:,})")
    return int(version), int(n_tensors), int(n_kvs)


def _not_gguf(head: bytes, size: int) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return ("This file is an HTML page, not a model: probably an error or login page saved "
                "instead of the model. Download it again (for a gated model, accept its licence "
                "and log in first).")
    if text.startswith(b"version https://git-lfs"):
        return ("This file is a Git LFS pointer (a small text stub), not the model itself. "
                "Download the real file, e.g. from the model page's download link.")
    if len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return ("This is a safetensors file, not GGUF. llama.cpp needs a GGUF file; pick a "
                "GGUF download of this model or convert it.")
    if text.startswith((b"{", b"[")):
        snippet = head.strip()[:80].decode("utf-8", "replace")
        return (f"This file is JSON text, not a model: probably an error message saved instead "
                f"of the model ({snippet!r}). Download it again.")
    if head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in _PICKLE_PROTOS):
        return ("This is a PyTorch checkpoint (a pickle, .bin/.pt), not GGUF. Openlid does not "
                "load pickles because they can run code; pick a GGUF download of this model.")
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return ("This is an old GGML/GGJT model file from before GGUF (2023); llama.cpp no "
                "longer reads it. Download a GGUF version of the model.")
    first = head[:8]
    shown = repr(first.decode()) if first.isascii() and first.isalnum() else first.hex(" ")
    return f"This is not a GGUF file (starts with {shown}); GGUF files start with 'GGUF'."


_PICKLE_PROTOS = (b"\x02", b"\x03", b"\x04", b"\x05")


class _Parser:
    """Walks the metadata and tensor table through a read window; every length is bounded."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._size = f, size
        self._buf, self._start = b"", 0
        self._strings_left = _MAX_STRINGS
        self.section = "metadata"

    def _take(self, pos: int, n: int) -> tuple[bytes, int]:
        if pos + n > self._size:
            raise _TruncatedError(pos + n)
        off = pos - self._start
        if off < 0 or off + n > len(self._buf):
            self._f.seek(pos)
            self._buf, self._start, off = self._f.read(max(n, _WINDOW)), pos, 0
            if len(self._buf) < n:  # the file shrank while we read it
                raise _TruncatedError(pos + n)
        return self._buf, off

    def _unpack(self, pos: int, fmt: struct.Struct) -> Any:
        buf, off = self._take(pos, fmt.size)
        return fmt.unpack_from(buf, off)[0]

    def _u64(self, pos: int) -> int:
        return int(self._unpack(pos, _U64))

    def _text(self, pos: int, n: int) -> str | None:
        if pos + n > self._size:
            raise _TruncatedError(pos + n)
        if n > _KEEP_STRING:
            return None
        buf, off = self._take(pos, n)
        return buf[off : off + n].decode("utf-8", "replace")

    def parse(self, version: int, n_tensors: int, n_kvs: int) -> _Parsed:
        pos, kvs = _HEADER_SIZE, {}
        for i in range(n_kvs):
            n = self._u64(pos)
            if n > _MAX_KEY_LEN:
                raise _bad(f"Metadata entry #{i + 1} has a key {n:,} bytes long, which is not "
                           "plausible")
            key = self._text(pos + 8, n) or ""
            vtype = int(self._unpack(pos + 8 + n, _U32))
            kvs[key], pos = self._value(pos + 12 + n, vtype, _printable(key))
            if len(kvs) != i + 1:
                raise _bad(f"Metadata key '{_printable(key)}' appears twice")
        align_kv = kvs.get("general.alignment", _Kv(_VT.UINT32, gguf.GGUF_DEFAULT_ALIGNMENT))
        align = align_kv.value
        if align_kv.vtype != _VT.UINT32 or align == 0 or align & (align - 1):
            raise _bad(f"The data alignment ({align!r}) is not a 32-bit power of two")
        self.section = "tensor list"
        tensors: dict[str, _Tensor] = {}
        data_size = 0  # llama.cpp wants tensor data back to back, each padded to `align`
        for i in range(n_tensors):
            n = self._u64(pos)
            if n > _MAX_NAME_LEN:
                raise _bad(f"Tensor #{i + 1} has a name {n:,} bytes long (llama.cpp allows at "
                           f"most {_MAX_NAME_LEN})")
            raw_name = self._text(pos + 8, n) or ""
            name = _printable(raw_name)
            n_dims = int(self._unpack(pos + 8 + n, _U32))
            if n_dims > _MAX_DIMS:
                raise _bad(f"Tensor '{name}' has {n_dims:,} dimensions (GGUF allows at most "
                           f"{_MAX_DIMS})")
            buf, off = self._take(pos + 12 + n, 8 * n_dims + 12)
            *dims, ggml_type, offset = struct.unpack_from(f"<{n_dims}QIQ", buf, off)
            pos += 24 + n + 8 * n_dims
            tensor = _tensor(name, dims, ggml_type, offset, data_size)
            if tensors.setdefault(raw_name, tensor) is not tensor:
                raise _bad(f"Tensor '{name}' appears twice")
            data_size += -(-tensor.n_bytes // align) * align
        data_start = -(-pos // align) * align
        for t in tensors.values():
            if data_start + t.offset + t.n_bytes > self._size:
                last = list(tensors.values())[-1]
                needed = data_start + last.offset + last.n_bytes
                where = f"the data of tensor '{t.name}' lies beyond the end of the file"
                raise _truncated(needed, self._size, where)
        return _Parsed(self._size, version, kvs, list(tensors.values()))

    def _value(self, pos: int, vtype: int, key: str) -> tuple[_Kv, int]:
        if vtype == _VT.STRING:
            n = self._u64(pos)
            if n > _MAX_STRING_LEN:
                raise _bad(f"Metadata key '{key}' holds a string of {n:,} bytes, which is not "
                           "plausible")
            return _Kv(vtype, self._text(pos + 8, n), n), pos + 8 + n
        fmt = _SCALARS.get(vtype)
        if fmt is not None:
            return _Kv(vtype, self._unpack(pos, fmt)), pos + fmt.size
        if vtype != _VT.ARRAY:
            raise _bad(f"Metadata key '{key}' has unknown value type {vtype}")
        itype, n = int(self._unpack(pos, _U32)), self._u64(pos + 4)
        pos += 12
        if n > _MAX_ARRAY_LEN:
            raise _bad(f"Metadata key '{key}' holds an array of {n:,} items, which is not "
                       "plausible")
        values: list[Any] | None = None
        if itype == _VT.STRING:
            if n > self._strings_left:
                raise _bad(f"Metadata key '{key}' holds {n:,} strings, which is not plausible")
            self._strings_left -= n
            values, pos = self._strings(pos, n, key)
        elif itype in _SCALARS:
            fmt = _SCALARS[itype]
            if pos + n * fmt.size > self._size:
                raise _TruncatedError(pos + n * fmt.size)
            if n <= _KEEP_ARRAY:
                buf, off = self._take(pos, n * fmt.size)
                values = list(struct.unpack_from(f"<{n}{fmt.format[1:]}", buf, off))
            pos += n * fmt.size
        else:
            what = "nested arrays" if itype == _VT.ARRAY else f"items of unknown type {itype}"
            raise _bad(f"Metadata key '{key}' is an array of {what}, which llama.cpp cannot read")
        return _Kv(_VT.ARRAY, values, n, itype), pos

    def _strings(self, pos: int, n: int, key: str) -> tuple[list[Any] | None, int]:
        if pos + 8 * n > self._size:  # each string needs at least its 8-byte length
            raise _TruncatedError(pos + 8 * n)
        keep: list[Any] | None = [] if n <= _KEEP_ARRAY else None
        buf, start = self._buf, self._start
        for _ in range(n):  # hot loop (a whole vocabulary): the window access is inlined
            off = pos - start
            if off < 0 or off + 8 > len(buf):
                buf, off = self._take(pos, 8)
                start = pos - off
            (length,) = _U64.unpack_from(buf, off)
            if length > _MAX_STRING_LEN:
                raise _bad(f"Metadata key '{key}' holds a string of {length:,} bytes, which is "
                           "not plausible")
            if keep is not None:
                text = self._text(pos + 8, length)
                keep.append(text if text is not None else f"<string of {length:,} bytes>")
            pos += 8 + length
        if pos > self._size:
            raise _TruncatedError(pos)
        return keep, pos


def _tensor(name: str, dims: list[int], ggml_type: int, offset: int, expected: int) -> _Tensor:
    shape = "x".join(str(d) for d in dims) or "scalar"
    if 0 in dims:
        raise _bad(f"Tensor '{name}' has a zero dimension (shape {shape}), so it holds no data")
    n_elements = math.prod(dims)
    if n_elements > _INT64_MAX:
        raise _bad(f"Tensor '{name}' has shape {shape}: its element count overflows 64 bits")
    sizes = _QUANT_SIZES.get(ggml_type)
    if sizes is None:
        raise GgufProblem(f"Tensor '{name}' has unknown ggml type {ggml_type}; the file is "
                          "damaged or needs a newer llama.cpp.")
    block, type_size = sizes
    if dims and dims[0] % block:
        kind = gguf.GGMLQuantizationType(ggml_type).name
        raise _bad(f"Tensor '{name}': a row of {dims[0]:,} values is not a whole number of "
                   f"{kind} blocks ({block} values each)")
    if offset != expected:
        raise _bad(f"Tensor '{name}' data starts at offset {offset:,}, but llama.cpp expects "
                   f"{expected:,}")
    return _Tensor(name, offset, n_elements, n_elements // block * type_size)


def _get_int(kvs: dict[str, _Kv], key: str, default: int) -> int:
    kv = kvs.get(key)
    if kv is None:
        return default
    if kv.vtype not in _INT_TYPES:
        raise _bad(f"Metadata key '{key}' should hold a whole number, not a {_VT(kv.vtype).name}")
    return int(kv.value)


def _architecture(kvs: dict[str, _Kv]) -> str:
    kv = kvs.get("general.architecture")
    if kv is not None and kv.vtype != _VT.STRING:
        raise _bad("The 'general.architecture' entry is not text")
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


def _quant_label(kv: _Kv | None) -> str:
    if kv is None or kv.vtype not in _INT_TYPES:
        return ""
    try:
        name = gguf.LlamaFileType(int(kv.value) & ~gguf.LlamaFileType.GUESSED).name
    except ValueError:
        return ""
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _display(kv: _Kv) -> object:
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
