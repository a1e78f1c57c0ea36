"""`openlid` entry point: no verb starts the GUI, a verb runs the CLI (desktop.cli.main)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in args:
        from desktop.cli.selftest import run_self_test

        return run_self_test()
    wants_cli = bool(args) and not args[0].startswith("-")
    if wants_cli or any(a in ("-h", "--help", "--version") for a in args):
        from desktop.cli.main import main as cli_main

        return cli_main(args)
    from desktop.ui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
