"""`openlid models` and `openlid import`: the model library from the command line (the same
`desktop.core.library.catalog` the GUI's Models panel uses), and the choice of models folder.
No Qt here; main thread of a terminal process.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_library_parsers(sub: Any) -> None:
    p = sub.add_parser("models", help="list local models (and assemble the ready model)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--folder", metavar="DIR",
                   help="make DIR the models folder (downloads and scans; the app uses it too); "
                        "'default' goes back to the default")

    p = sub.add_parser("import", help="add a GGUF file or safetensors folder, linked in place")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")


def cmd_models(args: argparse.Namespace) -> int:
    from desktop.core import paths
    from desktop.core.library import catalog
    from desktop.core.ready_model import ReadyModelMissing, ready_model_path

    if args.folder:
        try:
            folder = paths.set_models_dir(None if args.folder == "default" else args.folder)
        except OSError as exc:
            print(f"openlid: can't use {args.folder} as the models folder: {exc}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"models folder: {folder}")
        if paths.models_dir_from_env():
            print("note: OPENLID_MODELS_DIR is set and wins while it is", file=sys.stderr)
    try:
        ready_model_path()  # assembled into the models folder, so the scan lists it
    except ReadyModelMissing as exc:
        print(f"openlid: {exc}", file=sys.stderr)
    models = catalog.scan()
    if args.json:
        print(json.dumps([m.to_json() for m in models], indent=2))
        return EXIT_OK
    if not models:
        print("no local models; `openlid download REPO` or `openlid import PATH` adds one")
    for m in models:
        print(_model_line(m))
    return EXIT_OK


def _model_line(m: Any) -> str:
    if m.problem:
        return f"{m.name:40} {m.source:13} PROBLEM: {m.problem}\n{'':40} {m.path}"
    n = m.n_params
    params = f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n:,}"
    template = "template" if m.has_template else "no template"
    return (f"{m.name:40} {m.architecture:12} {params:>8} {m.quant:10} ctx {m.context_length:<7}"
            f" {template:11} {m.source}\n{'':40} {m.path}")


def cmd_import(args: argparse.Namespace) -> int:
    from desktop.core.database import DatabaseDamaged
    from desktop.core.library import catalog

    try:
        model = catalog.import_model(args.path)
    except DatabaseDamaged as exc:  # the words and the exit status come from `openlid`'s main
        if args.json:
            print(json.dumps({"imported": False, "problem": str(exc)}))
        raise
    except catalog.LibraryError as exc:
        if args.json:
            print(json.dumps({"imported": False, "problem": str(exc)}))
        print(f"openlid: {args.path}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps({"imported": True, **model.to_json()}, indent=2))
    else:
        print(f"added {model.name} ({model.source}): {model.path}")
    return EXIT_OK
