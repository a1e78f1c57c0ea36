"""The bundle's entry script: PyInstaller runs this file as `__main__` of the `openlid` binary.

`freeze_support()` must come first: the engine worker is a multiprocessing "spawn" child, which
in a frozen app is this same binary started with `--multiprocessing-fork …` (and the resource
tracker with `-c …`). Without it the child would start a second app instead of the worker.
Runs in the main thread of the app (or of the worker process, which never returns from it).
"""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from desktop.__main__ import main

    sys.exit(main())
