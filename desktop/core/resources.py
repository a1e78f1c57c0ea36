"""Find Openlid's bundled assets (icons, template presets, qss…) wherever the app runs from.

The `resources/` folder is installed three ways, and this is the one place that knows them:

* a PyInstaller bundle: the spec copies the folder to `sys._MEIPASS/resources`;
* an installed wheel or editable install: pyproject maps the folder to the package
  `openlid_resources`, found through importlib;
* a source checkout run without installing: `<repo>/resources`, next to `desktop/`.

Pure and cheap (the lookup is cached); safe from any thread or process.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

PACKAGE = "openlid_resources"


def _candidates() -> list[Path]:
    found: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        found.append(Path(bundle) / "resources")
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        # A namespace package (no __init__.py) lists its folder in submodule_search_locations;
        # editable installs may add non-path hook entries, so keep only real folders.
        found.extend(Path(p) for p in (spec.submodule_search_locations or []))
        if spec.origin and spec.origin not in ("namespace", "built-in"):
            found.append(Path(spec.origin).parent)
    # <repo>/desktop/core/resources.py -> <repo>/resources. Checked last: in an installed app
    # this path points into site-packages, where a folder of that name may belong to others.
    found.append(Path(__file__).resolve().parents[2] / "resources")
    return found


@functools.cache
def resources_root() -> Path:
    """The folder holding Openlid's resources; FileNotFoundError if none is found."""
    for candidate in _candidates():
        if (candidate / "templates" / "index.json").is_file():
            return candidate
    raise FileNotFoundError(
        "Openlid's resources folder was not found (looked in: "
        + ", ".join(str(c) for c in _candidates())
        + ")"
    )


def resource_path(*parts: str) -> Path:
    """Path of a resource, e.g. `resource_path("templates", "index.json")`.

    The path is not checked for existence beyond the resources folder itself.
    """
    return resources_root().joinpath(*parts)
