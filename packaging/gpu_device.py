"""A stand-in for the ready model on a machine the model cannot travel to (issue #16's GPU check on
a lent device machine: nothing can be fetched there, and at most 64 MiB travel with a call,
where the ready model is 253 MB).

    python packaging/gpu_device.py prepare DIR     # here: needs the ready model and gguf
    python3 packaging/gpu_device.py model DIR OUT  # there: the standard library and numpy
    python3 packaging/gpu_device.py scan           # there: the capture's C pass, for its Python

`prepare` writes what precedes the ready model's tensor data (its header: every metadata value,
the whole tokenizer, each tensor's name, type, shape and offset; ~6.5 MB), the first whole blocks
of each tensor's data (32 KiB at most a tensor, ~4.4 MB) and where each tensor's data lies.
`model` writes a GGUF laid out byte for byte as the ready model — the same architecture, tensor
types, shapes and offsets, so llama.cpp loads and runs it as it runs the ready model, at the same
cost — whose tensors repeat their first blocks, each repeat with its blocks' quantized values
shuffled another way (the scales kept): no two rows of a matrix alike, so the scores of a step
tie no more often than the ready model's do and sampling costs what it costs there. The speed of
decoding it is the ready model's; its text is not (a benchmark's figure, never a reply to read).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

SAMPLE_BYTES = 32 * 1024  # of each tensor's data, rounded down to whole quantization blocks
HEADER, SAMPLES, LAYOUT = "model-header.bin", "model-samples.bin", "model-layout.json"
# Where a block's quantized values lie, by type (ggml-common.h's block layouts; the scales, fp16
# and 6-bit, lie outside these bytes). Types not named here (F32, F16...) repeat as they are.
QUANTS = {"Q4_0": (2, 18), "Q4_1": (4, 20), "Q5_0": (6, 22), "Q5_1": (8, 24), "Q8_0": (2, 34),
          "Q4_K": (16, 144), "Q5_K": (48, 176), "Q6_K": (0, 128)}


def prepare(folder: Path, source: Path | None = None) -> None:
    """`source`: the GGUF to stand in for (the ready model by default)."""
    import gguf

    from desktop.core.ready_model import ready_model_path

    path = source or ready_model_path()
    reader = gguf.GGUFReader(path)
    tensors = sorted(reader.tensors, key=lambda t: int(t.data_offset))
    folder.mkdir(parents=True, exist_ok=True)
    layout = []
    with open(path, "rb") as src, open(folder / SAMPLES, "wb") as samples:
        header = src.read(int(tensors[0].data_offset))
        for t in tensors:
            block = gguf.GGML_QUANT_SIZES[t.tensor_type][1]  # bytes a block
            size = int(t.n_bytes)
            take = min(size, max(block, SAMPLE_BYTES // block * block))
            src.seek(int(t.data_offset))
            samples.write(src.read(take))
            layout.append({"name": t.name, "type": t.tensor_type.name, "block": block,
                           "offset": int(t.data_offset), "bytes": size, "sample": take})
    (folder / HEADER).write_bytes(header)
    (folder / LAYOUT).write_text(json.dumps({"source": Path(path).name,
                                             "size": Path(path).stat().st_size,
                                             "tensors": layout}))


def _repeats(sample: bytes, size: int, kind: str, block: int) -> Iterator[bytes]:
    """`size` bytes of `sample` repeated; with a quantized `kind`, each repeat after the first
    with the quantized bytes of its blocks in another order (the same order in every block of
    that repeat, a new one each repeat)."""
    import numpy as np

    span = QUANTS.get(kind)
    blocks = np.frombuffer(sample, dtype=np.uint8).reshape(-1, block)
    rng = np.random.default_rng(len(sample))
    done, first = 0, True
    while done < size:
        part = blocks
        if span is not None and not first:
            part = blocks.copy()
            lo, hi = span
            part[:, lo:hi] = part[:, lo:hi][:, rng.permutation(hi - lo)]
        chunk = part.tobytes()[: size - done]
        yield chunk
        done += len(chunk)
        first = False


def model(folder: Path, out: Path) -> None:
    layout = json.loads((folder / LAYOUT).read_text())
    with open(folder / SAMPLES, "rb") as samples, open(out, "wb") as dst:
        dst.write((folder / HEADER).read_bytes())
        for t in layout["tensors"]:
            sample = samples.read(t["sample"])
            dst.write(b"\0" * (t["offset"] - dst.tell()))  # the alignment padding
            for chunk in _repeats(sample, t["bytes"], t["type"], t["block"]):
                dst.write(chunk)
        dst.write(b"\0" * (layout["size"] - dst.tell()))
    if out.stat().st_size != layout["size"]:
        raise SystemExit(f"{out}: {out.stat().st_size} bytes, not {layout['size']}")


def scan() -> None:
    """desktop/engine/_scan.c built in place for the running Python (no setuptools install)."""
    import subprocess
    import sysconfig

    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.run(["cc", "-O3", "-shared", "-fPIC", "-I" + sysconfig.get_paths()["include"],
                    "desktop/engine/_scan.c", "-o", f"desktop/engine/_scan{suffix}"], check=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "prepare":
        prepare(Path(argv[1]))
    elif argv == ["scan"]:
        scan()
    elif len(argv) == 3 and argv[0] == "model":
        model(Path(argv[1]), Path(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
