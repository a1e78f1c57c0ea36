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

from desktop.cli.args import add_flash_attn_arg
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SettingsError
from desktop.server.config import DEFAULT_MAX_REQUEST_S as _MAX_REQUEST_S
from desktop.server.config import DEFAULT_MAX_TOKENS as _MAX_TOKENS
from desktop.server.config import DEFAULT_MAX_WAIT_S as _MAX_WAIT_S

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
API_KEY_ENV = "OPENLID_API_KEY"
ORIGINS_ENV = "OPENLID_ORIGINS"
_EPILOG = f"""\
limits:
  A request generates for at most --max-request-seconds (default {_MAX_REQUEST_S:g} s); then it is
  stopped and answered with what it has (finish_reason "length"). A request that gives no
  max_tokens gets --default-max-tokens (default {_MAX_TOKENS}, fewer where the context ends).
  A request waits for the model at most --max-wait-seconds (default {_MAX_WAIT_S:g} s), then gets a
  503 with Retry-After (a 429 when 8 already wait). A client that disconnects stops its
  generation at once.

refused, so that web pages cannot use the model:
  403 for a Host header other than localhost, a loopback address or the address served on
  (bound to 0.0.0.0 or ::, also any IP address, this machine's host name and --allow-host
  names); 403 for a browser Origin not listed with --allow-origin or ${ORIGINS_ENV};
  415 for a POST body sent without Content-Type: application/json.

API key:
  Pass it as {API_KEY_ENV}=KEY in the environment. --api-key works too, but every user of
  this machine can read a command line with `ps`.
"""


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` verb to `openlid`'s subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible API (with real logprobs)",
        description=(
            "Serve one GGUF model at /v1/models, /v1/chat/completions and /v1/completions. "
            "Only this machine can connect unless --host says otherwise; any other address "
            f"needs an API key (${API_KEY_ENV}, or --api-key)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=False, help="GGUF file (default: the ready Gemma model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    p.add_argument("--api-key", default=None,
                   help=f"key clients must send as 'Authorization: Bearer KEY'; prefer "
                        f"${API_KEY_ENV}=KEY, since other users see command lines in `ps` "
                        f"(default: ${API_KEY_ENV}, else none)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help=f"let web pages from this origin (e.g. http://localhost:3000, or * "
                        f"for any) use the server, with CORS; repeatable; also "
                        f"${ORIGINS_ENV}=URL,URL (default: no web page)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another host name clients may reach the server by (e.g. a DNS name "
                        "of this machine); repeatable")
    p.add_argument("--max-request-seconds", type=float, default=_MAX_REQUEST_S, metavar="S",
                   help=f"longest one request may generate (default {_MAX_REQUEST_S:g})")
    p.add_argument("--max-wait-seconds", type=float, default=_MAX_WAIT_S, metavar="S",
                   help=f"longest a request waits for the model before a 503 "
                        f"(default {_MAX_WAIT_S:g})")
    p.add_argument("--default-max-tokens", type=int, default=_MAX_TOKENS, metavar="N",
                   help=f"max_tokens for requests that give none (default {_MAX_TOKENS}, "
                        "or the rest of the context)")
    p.add_argument("--ctx", type=int, default=4096, help="context length in tokens")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument("--gpu-layers", type=int, default=-2,
                   help="layers to offload (-2 = auto: as many as fit in free VRAM, -1 = all)")
    add_flash_attn_arg(p)
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
    if args.api_key:
        print(f"openlid: note: --api-key is visible to other users in `ps`; set {API_KEY_ENV} "
              "instead", file=sys.stderr, flush=True)
    origins = [*args.allow_origin,
               *(o for o in os.environ.get(ORIGINS_ENV, "").split(",") if o.strip())]
    try:
        load = LoadSettings(
            n_gpu_layers=args.gpu_layers, n_ctx=args.ctx, n_threads=args.threads,
            flash_attn=args.flash_attn,
        ).validated()
        server = OpenlidServer(
            _model_path(args), load, host=args.host, port=args.port, api_key=api_key,
            model_id=args.model_id, on_request=None if args.quiet else _print_request,
            allowed_origins=origins, allowed_hosts=args.allow_host,
            max_request_seconds=args.max_request_seconds, max_wait_seconds=args.max_wait_seconds,
            default_max_tokens=args.default_max_tokens,
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
        if origins:
            print(f"openlid: web pages allowed from {', '.join(origins)}", flush=True)
        n_ctx = server.info.n_ctx if server.info else server.default_max_tokens
        print(f"openlid: each request generates for at most {server.max_request_seconds:g} s "
              f"and, unless it asks otherwise, {min(server.default_max_tokens, n_ctx)} tokens",
              flush=True)
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
