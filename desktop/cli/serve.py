"""`openlid serve`: the OpenAI-compatible server from a terminal. No Qt.

Runs in the terminal's main thread: loads the model, prints the address, then waits for Ctrl-C
(or SIGTERM) while the server's own threads answer requests. Exit codes as in `desktop.cli.main`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SettingsError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
API_KEY_ENV = "OPENLID_API_KEY"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` verb to `openlid`'s subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible API (with real logprobs)",
        description=(
            "Serve one GGUF model at /v1/models, /v1/chat/completions and /v1/completions. "
            "Only this machine can connect unless --host says otherwise; any other address "
            f"needs an API key (--api-key or ${API_KEY_ENV})."
        ),
    )
    p.add_argument("--model", required=False, help="GGUF file (default: the ready Gemma model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    p.add_argument("--api-key", default=None,
                   help=f"key clients must send as 'Authorization: Bearer KEY' "
                        f"(default: ${API_KEY_ENV}, else none)")
    p.add_argument("--ctx", type=int, default=4096, help="context length in tokens")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument("--gpu-layers", type=int, default=0, help="layers to offload (-1 = all)")
    p.add_argument("--model-id", default=None, help="model name reported at /v1/models")
    p.add_argument("--quiet", action="store_true", help="do not print one line per request")
    return p


def _model_path(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model)
    from desktop.core.ready_model import ready_model_path

    return ready_model_path()


def _print_request(entry: Any) -> None:
    tokens = f" {len(entry.steps)} tokens" if entry.steps else ""
    error = f" — {entry.error}" if entry.error else ""
    print(f"{entry.method} {entry.path} {entry.status} {entry.duration_ms:.0f} ms{tokens}{error}",
          flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from desktop.core.ready_model import ReadyModelMissing
    from desktop.server.openlid_server import OpenlidServer, ServerConfigError

    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV)
    try:
        load = LoadSettings(
            n_gpu_layers=args.gpu_layers, n_ctx=args.ctx, n_threads=args.threads
        ).validated()
        server = OpenlidServer(
            _model_path(args), load, host=args.host, port=args.port, api_key=api_key,
            model_id=args.model_id, on_request=None if args.quiet else _print_request,
        )
        server.start()
    except (ServerConfigError, SettingsError, ReadyModelMissing) as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print(f"openlid: serving {server.model_id} at {server.base_url}", flush=True)
        print(f"openlid: try  curl {server.base_url}/models"
              + (" -H 'Authorization: Bearer $KEY'" if api_key else ""), flush=True)
        print("openlid: press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if not server.running:
                print("openlid: the server stopped", file=sys.stderr)
                return EXIT_FAIL
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return EXIT_OK
