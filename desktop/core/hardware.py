"""What this machine has: CPU cores, RAM, GPUs and their free memory.

Pure and Qt-free; any thread, but `detect()` runs `nvidia-smi` (up to a few hundred ms), so call it
off the GUI thread. Whether *this llama.cpp build* can offload to a GPU is the engine's to say
(`ModelInfo.gpu_offload_supported`), since only the worker process imports llama_cpp.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuInfo:
    name: str
    total_bytes: int
    free_bytes: int
    backend: str  # "CUDA" or "Metal"


@dataclass(frozen=True)
class HardwareInfo:
    cpu: str
    cores: int
    total_ram_bytes: int
    available_ram_bytes: int
    gpus: tuple[GpuInfo, ...] = field(default=())

    @property
    def free_vram_bytes(self) -> int:
        return sum(g.free_bytes for g in self.gpus)


def _meminfo() -> tuple[int, int]:
    """(total, available) RAM in bytes; zeros when the platform does not say."""
    try:
        with open("/proc/meminfo") as f:
            values = {}
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    values[key] = int(parts[0]) * 1024
        return values.get("MemTotal", 0), values.get("MemAvailable", values.get("MemFree", 0))
    except (OSError, ValueError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = page * os.sysconf("SC_PHYS_PAGES")
        try:
            available = page * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError):
            available = total // 2  # macOS has no such count without a native call
        return total, available
    except (ValueError, OSError, AttributeError):
        return 0, 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_nvidia_smi(output: str) -> tuple[GpuInfo, ...]:
    """Parse `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits`
    (MiB figures)."""
    gpus = []
    for line in output.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            total, free = int(float(parts[1])), int(float(parts[2]))
        except ValueError:
            continue
        gpus.append(GpuInfo(parts[0], total * 1024 * 1024, free * 1024 * 1024, "CUDA"))
    return tuple(gpus)


def _nvidia_gpus() -> tuple[GpuInfo, ...]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else ()


def detect() -> HardwareInfo:
    total, available = _meminfo()
    gpus = _nvidia_gpus()
    if not gpus and platform.system() == "Darwin" and platform.machine() == "arm64":
        # Apple Silicon: the GPU shares unified memory; Metal can use most of it.
        gpus = (GpuInfo("Apple GPU (unified memory)", total, available, "Metal"),)
    return HardwareInfo(_cpu_name(), os.cpu_count() or 1, total, available, gpus)


THREADS_ENV = "OPENLID_THREADS"


def env_threads() -> int:
    """OPENLID_THREADS when it holds a positive number, else 0."""
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0


def default_threads() -> int:
    """The CPU threads a model decodes with when its settings say 0 (automatic): the
    OPENLID_THREADS environment variable when it holds a positive number (as llama-server reads
    LLAMA_ARG_THREADS; a machine shared with other work, or several Openlid processes at once),
    otherwise one per core."""
    return env_threads() or max(1, os.cpu_count() or 1)
