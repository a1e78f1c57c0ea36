"""Read a GGUF file's header, metadata and tensor table with a bound on every count and length.

gguf 0.19's `GGUFReader` has no dimension-count or overflow checks, builds one numpy view per
array element (about 8 s for a 262k-token vocabulary) and loops as long as a forged array length
says. So this module parses the header itself, bounding every count and length, and reads tensor
*descriptions* only, never tensor data: a multi-GB model is read through its first few MB (0.2 s
for Gemma 3 270M). A file that is not GGUF at all is named (HTML page, LFS pointer, safetensors,
pickle, GGML) rather than refused with a byte dump. Value types, ggml types and block sizes come
from the `gguf` package. `gguf_file.check` turns what is read here into a report.

Plain reads through a window, not mmap: a file that shrinks while it is read reads short (and
is reported truncated) instead of killing the process with SIGBUS.

Pure Python, no shared state: call it from any thread or process.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import gguf

__all__ = ["INT_TYPES", "GgufProblem", "Kv", "Parsed", "Tensor", "damaged", "parse_file"]

_VT = gguf.GGUFValueType
_HEADER_SIZE = 24  # magic b"GGUF", version u32, tensor count u64, kv count u64
_SUPPORTED_VERSIONS = (2, 3)
# Sanity bounds: far above any real model (a few thousand tensors, ~50 keys, 1M-token vocab),
# far below what would make the reader itself hang or run out of memory.
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

_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_SCALAR_CODES = {
    _VT.UINT8: "B", _VT.INT8: "b", _VT.UINT16: "H", _VT.INT16: "h", _VT.UINT32: "I",
    _VT.INT32: "i", _VT.FLOAT32: "f", _VT.BOOL: "?", _VT.UINT64: "Q", _VT.INT64: "q",
    _VT.FLOAT64: "d",
}
_SCALARS = {int(t): struct.Struct("<" + c) for t, c in _SCALAR_CODES.items()}
INT_TYPES = frozenset(int(t) for t, c in _SCALAR_CODES.items() if c in "BbHhIiQq")
_QUANT_SIZES = {int(t): size for t, size in gguf.GGML_QUANT_SIZES.items()}


class GgufProblem(Exception):
    """The file cannot be used as a GGUF model; `str()` says why, in plain words."""


@dataclass(frozen=True)
class Kv:
    """One metadata value as read: `value` is bounded (see `_KEEP_STRING`, `_KEEP_ARRAY`)."""

    vtype: int
    value: Any  # scalar, str, or list for short arrays; None when too long to keep
    length: int = 0  # bytes of a string, elements of an array
    subtype: int = -1  # element type of an array


@dataclass(frozen=True)
class Tensor:
    """One tensor's description (never its data)."""

    name: str
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class Parsed:
    """One GGUF file as read: its size, version, metadata and tensor table."""

    size: int
    version: int
    kvs: dict[str, Kv]
    tensors: list[Tensor]
    data_start: int = 0  # where the tensor data begins (a tensor's bytes: data_start + offset)


class _TruncatedError(Exception):
    """Raised with the number of bytes the file would need to have."""


def _printable(text: str) -> str:
    """A key or tensor name fit for a message: bytes from the file may be anything."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:80])
    return shown + ("…" if len(text) > 80 else "")


def damaged(what: str) -> GgufProblem:
    """The problem for a structural defect: `what` is wrong, so the file is damaged."""
    return GgufProblem(f"{what}; the file is damaged.")


def _truncated(needed: int, size: int, detail: str) -> GgufProblem:
    return GgufProblem(f"The file is truncated: expected at least {needed:,} bytes, found "
                       f"{size:,} ({detail}). The download probably stopped early; download "
                       "it again.")


def parse_file(p: str) -> Parsed:
    """Read one GGUF file's header, metadata and tensor table; raise `GgufProblem` if unusable."""
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
            raise damaged(f"The header claims {count:,} {what}, which is not plausible "
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

    def parse(self, version: int, n_tensors: int, n_kvs: int) -> Parsed:
        pos, kvs = _HEADER_SIZE, {}
        for i in range(n_kvs):
            n = self._u64(pos)
            if n > _MAX_KEY_LEN:
                raise damaged(f"Metadata entry #{i + 1} has a key {n:,} bytes long, which is not "
                              "plausible")
            key = self._text(pos + 8, n) or ""
            vtype = int(self._unpack(pos + 8 + n, _U32))
            kvs[key], pos = self._value(pos + 12 + n, vtype, _printable(key))
            if len(kvs) != i + 1:
                raise damaged(f"Metadata key '{_printable(key)}' appears twice")
        align_kv = kvs.get("general.alignment", Kv(_VT.UINT32, gguf.GGUF_DEFAULT_ALIGNMENT))
        align = align_kv.value
        if align_kv.vtype != _VT.UINT32 or align == 0 or align & (align - 1):
            raise damaged(f"The data alignment ({align!r}) is not a 32-bit power of two")
        self.section = "tensor list"
        tensors: dict[str, Tensor] = {}
        data_size = 0  # llama.cpp wants tensor data back to back, each padded to `align`
        for i in range(n_tensors):
            n = self._u64(pos)
            if n > _MAX_NAME_LEN:
                raise damaged(f"Tensor #{i + 1} has a name {n:,} bytes long (llama.cpp allows at "
                              f"most {_MAX_NAME_LEN})")
            raw_name = self._text(pos + 8, n) or ""
            name = _printable(raw_name)
            n_dims = int(self._unpack(pos + 8 + n, _U32))
            if n_dims > _MAX_DIMS:
                raise damaged(f"Tensor '{name}' has {n_dims:,} dimensions (GGUF allows at most "
                              f"{_MAX_DIMS})")
            buf, off = self._take(pos + 12 + n, 8 * n_dims + 12)
            *dims, ggml_type, offset = struct.unpack_from(f"<{n_dims}QIQ", buf, off)
            pos += 24 + n + 8 * n_dims
            tensor = _tensor(name, dims, ggml_type, offset, data_size)
            if tensors.setdefault(raw_name, tensor) is not tensor:
                raise damaged(f"Tensor '{name}' appears twice")
            data_size += -(-tensor.n_bytes // align) * align
        data_start = -(-pos // align) * align
        for t in tensors.values():
            if data_start + t.offset + t.n_bytes > self._size:
                last = list(tensors.values())[-1]
                needed = data_start + last.offset + last.n_bytes
                where = f"the data of tensor '{t.name}' lies beyond the end of the file"
                raise _truncated(needed, self._size, where)
        return Parsed(self._size, version, kvs, list(tensors.values()), data_start)

    def _value(self, pos: int, vtype: int, key: str) -> tuple[Kv, int]:
        if vtype == _VT.STRING:
            n = self._u64(pos)
            if n > _MAX_STRING_LEN:
                raise damaged(f"Metadata key '{key}' holds a string of {n:,} bytes, which is not "
                              "plausible")
            return Kv(vtype, self._text(pos + 8, n), n), pos + 8 + n
        fmt = _SCALARS.get(vtype)
        if fmt is not None:
            return Kv(vtype, self._unpack(pos, fmt)), pos + fmt.size
        if vtype != _VT.ARRAY:
            raise damaged(f"Metadata key '{key}' has unknown value type {vtype}")
        itype, n = int(self._unpack(pos, _U32)), self._u64(pos + 4)
        pos += 12
        if n > _MAX_ARRAY_LEN:
            raise damaged(f"Metadata key '{key}' holds an array of {n:,} items, which is not "
                          "plausible")
        values: list[Any] | None = None
        if itype == _VT.STRING:
            if n > self._strings_left:
                raise damaged(f"Metadata key '{key}' holds {n:,} strings, which is not plausible")
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
            raise damaged(f"Metadata key '{key}' is an array of {what}, which llama.cpp cannot "
                          "read")
        return Kv(_VT.ARRAY, values, n, itype), pos

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
                raise damaged(f"Metadata key '{key}' holds a string of {length:,} bytes, which is "
                              "not plausible")
            if keep is not None:
                text = self._text(pos + 8, length)
                keep.append(text if text is not None else f"<string of {length:,} bytes>")
            pos += 8 + length
        if pos > self._size:
            raise _TruncatedError(pos)
        return keep, pos


def _tensor(name: str, dims: list[int], ggml_type: int, offset: int, expected: int) -> Tensor:
    shape = "x".join(str(d) for d in dims) or "scalar"
    if 0 in dims:
        raise damaged(f"Tensor '{name}' has a zero dimension (shape {shape}), so it holds no data")
    n_elements = math.prod(dims)
    if n_elements > _INT64_MAX:
        raise damaged(f"Tensor '{name}' has shape {shape}: its element count overflows 64 bits")
    sizes = _QUANT_SIZES.get(ggml_type)
    if sizes is None:
        raise GgufProblem(f"Tensor '{name}' has unknown ggml type {ggml_type}; the file is "
                          "damaged or needs a newer llama.cpp.")
    block, type_size = sizes
    if dims and dims[0] % block:
        kind = gguf.GGMLQuantizationType(ggml_type).name
        raise damaged(f"Tensor '{name}': a row of {dims[0]:,} values is not a whole number of "
                      f"{kind} blocks ({block} values each)")
    if offset != expected:
        raise damaged(f"Tensor '{name}' data starts at offset {offset:,}, but llama.cpp expects "
                      f"{expected:,}")
    return Tensor(name, offset, n_elements, n_elements // block * type_size)

