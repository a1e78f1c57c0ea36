"""PyInstaller hook for llama-cpp-python: keep llama.cpp's native libraries at `llama_cpp/lib/`.

llama_cpp loads `libllama` with ctypes from `Path(llama_cpp.__file__).parent / "lib"`, and the
libraries find each other there (RUNPATH `$ORIGIN` on Linux, `@loader_path` on macOS, the DLL
directory llama_cpp adds on Windows). So the whole folder must land at the same relative place in
the bundle; PyInstaller's default would scatter dependencies into the bundle's top folder.

Runs at build time inside PyInstaller (found through `hookspath` in packaging/openlid.spec).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from PyInstaller.utils.hooks import collect_data_files, get_package_paths

_, _package_dir = get_package_paths("llama_cpp")
_lib_dir = Path(_package_dir) / "lib"

# Linux wheels carry three identical copies of each library: libX.so (what ctypes opens),
# libX.so.N (the SONAME the others link against) and libX.so.N.M.K. The last is never opened.
_FULL_VERSION = re.compile(r"\.so\.\d+\.\d+")


def _wanted(path: Path) -> bool:
    name = path.name
    if sys.platform == "win32":
        return name.lower().endswith(".dll")
    if sys.platform == "darwin":
        return name.endswith((".dylib", ".so"))
    return ".so" in name and not _FULL_VERSION.search(name)


if not _lib_dir.is_dir():
    raise SystemExit(
        f"hook-llama_cpp: {_lib_dir} does not exist; this llama-cpp-python install has no "
        "native libraries where Openlid expects them"
    )

binaries = [
    (str(path), "llama_cpp/lib")
    for path in sorted(_lib_dir.iterdir())
    if path.is_file() and _wanted(path)
]
if not any("llama" in Path(src).name for src, _ in binaries):
    raise SystemExit(f"hook-llama_cpp: no llama library found in {_lib_dir}")

# Metal builds that do not embed their shaders read them from beside the library at run time.
datas = [
    (str(path), "llama_cpp/lib")
    for path in sorted(_lib_dir.iterdir())
    if path.suffix in (".metal", ".metallib")
]
datas += collect_data_files("llama_cpp", excludes=["**/server/**", "**/lib/**"])
hiddenimports = ["llama_cpp.llama_cpp", "llama_cpp._internals", "llama_cpp.llama_chat_format"]
# The OpenAI-compatible server pulls in fastapi/uvicorn; the app never uses it.
excludedimports = ["llama_cpp.server"]
