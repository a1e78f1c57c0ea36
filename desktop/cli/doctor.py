"""`openlid doctor`: what this machine and this llama.cpp build can do, measured.

No Qt. Prints the hardware, whether the build can offload to a GPU, loads the model with every
layer offloaded and says how many really went (llama.cpp's per-layer device assignment and its
weight buffers, read from the worker's log: `core.gpu_layers`), what GPU layers "auto" picks here,
then measures tokens/s on the GPU and on the CPU in one run. A person with a GPU runs it (see
packaging/gpu_check.sh) and the figures go in the README.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings

# The engine, the hardware probe and core.gpu_layers (gguf, numpy) are imported where they are
# used: `openlid --help` mounts this verb's parser and should not pay for them.

PROMPT = "The history of the printing press begins"


def add_doctor_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="hardware, GPU offload and tokens/s on GPU vs CPU")
    p.add_argument("--model", help="GGUF file (default: the ready Gemma model)")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")


def _measure(path: str, settings: LoadSettings, tokens: int) -> dict[str, Any]:
    from desktop.core.gpu_layers import read_offload
    from desktop.engine import protocol as P
    from desktop.engine.host import EngineHost

    host = EngineHost()
    try:
        info = None
        for event in host.wait(host.load(path, settings), timeout=600):
            if isinstance(event, P.Loaded):
                info = event.info
            else:
                return {"error": getattr(event, "message", None) or getattr(event, "reason", "")}
        assert info is not None
        greedy = SamplerSettings(temperature=0, max_tokens=tokens, ignore_eos=True)
        done = None
        for _ in range(2):  # the first run warms up
            for event in host.wait(host.generate(((PROMPT, False),), greedy, capture=False)):
                if isinstance(event, P.Done):
                    done = event.result
                elif not isinstance(event, P.Step):
                    return {"error": str(event)}
        assert done is not None
        try:
            with open(host.log_path, encoding="utf-8", errors="replace") as f:
                seen = read_offload(f.read())
        except OSError:
            seen = None
        return {
            "backend": info.backend,
            "gpu_offload_supported": info.gpu_offload_supported,
            "layers_offloaded": info.n_layers_offloaded,
            "layers": info.n_layer,
            "offload_note": info.offload_note,
            "flash_attn": info.flash_attn,
            "layers_by_device": dict(seen.devices) if seen is not None else None,
            "weights_mib_by_buffer": dict(seen.buffers_mib) if seen is not None else None,
            "load_ms": round(info.load_ms, 1),
            "tokens_per_second": round(done.timings.tokens_per_second, 2),
            "first_token_ms": round(done.timings.first_token_ms, 2),
        }
    finally:
        host.shutdown()


def cmd_doctor(args: argparse.Namespace, model_path: str) -> int:
    from desktop.core.gpu_layers import resolve_gpu_layers
    from desktop.core.hardware import detect

    hw = detect()
    report: dict[str, Any] = {
        "cpu": hw.cpu,
        "cores": hw.cores,
        "ram_gb": round(hw.total_ram_bytes / 2**30, 1),
        "ram_available_gb": round(hw.available_ram_bytes / 2**30, 1),
        "gpus": [
            {"name": g.name, "backend": g.backend, "vram_gb": round(g.total_bytes / 2**30, 1),
             "free_gb": round(g.free_bytes / 2**30, 1)}
            for g in hw.gpus
        ],
        "model": model_path,
    }
    base = LoadSettings(n_threads=args.threads, n_ctx=2048)
    report["gpu_run"] = _measure(model_path, base.replace(n_gpu_layers=-1), args.tokens)
    report["cpu_run"] = _measure(model_path, base.replace(n_gpu_layers=0), args.tokens)
    gpu, cpu = report["gpu_run"], report["cpu_run"]
    report["auto_gpu_layers"] = resolve_gpu_layers(
        model_path, base, supports_gpu=bool(gpu.get("gpu_offload_supported")))
    if gpu.get("tokens_per_second") and cpu.get("tokens_per_second"):
        report["gpu_speedup"] = round(gpu["tokens_per_second"] / cpu["tokens_per_second"], 2)
    from desktop.engine.fused_scan import capture_pass

    report["capture_pass"] = capture_pass()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"CPU: {hw.cpu} ({hw.cores} threads), RAM {report['ram_gb']} GB "
          f"({report['ram_available_gb']} GB available)")
    if not hw.gpus:
        print("GPU: none found (no nvidia-smi answer, not Apple Silicon)")
    for g in report["gpus"]:
        print(f"GPU: {g['name']} ({g['backend']}), {g['vram_gb']} GB, {g['free_gb']} GB free")
    for label, run in (("all layers on GPU", gpu), ("CPU only", cpu)):
        if "error" in run:
            print(f"{label}: failed: {run['error']}")
            continue
        print(f"{label}: backend {run['backend']}, {run['layers_offloaded']}/{run['layers']} "
              f"layers offloaded, {run['tokens_per_second']} tokens/s, first token "
              f"{run['first_token_ms']} ms")
        if run["layers_by_device"]:
            where = ", ".join(f"{name} {n}" for name, n in run["layers_by_device"].items())
            print(f"  layers by device (llama.cpp's assignment): {where}")
        if run["offload_note"]:
            print(f"  note: {run['offload_note']}")
        if run["flash_attn"] is not None:
            print(f"  flash attention (auto): {'on' if run['flash_attn'] else 'off'}")
    print(f"GPU layers auto would offload {report['auto_gpu_layers']} layers on this machine")
    print(f"capture's pass over the scores: {report['capture_pass']}")
    if "gpu_speedup" in report:
        print(f"GPU vs CPU: {report['gpu_speedup']}x")
    return 0

