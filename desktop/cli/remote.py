"""`openlid remote add|list|edit|remove|check`: OpenAI-compatible endpoints as models, from the CLI.

The same store the GUI's remote model dialog writes (`desktop.remote.entries`), so an endpoint added
here shows up in the app's model library and the other way round. An entry's path `remote:<id>`
is what `openlid generate --model` and `openlid chat --model` take; the engine worker loads it like
a local file (raw stage only: an endpoint reports probabilities, not its sampler's stages).

Keys: never printed, never in an error message (`entries.redact`), never logged; `list`
says only whether an entry has one. `--key-env VAR` keeps a key out of the shell's history.

No Qt. Runs on the CLI's main thread; the network checks block it, bounded by CHECK_TIMEOUT_S.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any

from desktop.remote import entries
from desktop.remote.client import RemoteEngine, RemoteError, RemoteModel
from desktop.remote.entries import REMOTE_PREFIX, RemoteEntry, RemoteModelError, public_url

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
CHECK_TIMEOUT_S = 10.0  # an endpoint that cannot list its models in 10 s counts as down
LOCAL_ONLY_VERBS = {
    "bench": "measures llama.cpp on this machine",
    "doctor": "measures GPU offload on this machine",
}


def add_remote_parser(sub: Any) -> None:
    p = sub.add_parser("remote", help="OpenAI-compatible endpoints as models (remote:<id>)")
    rsub = p.add_subparsers(dest="remote_verb", required=True)

    a = rsub.add_parser("add", help="add an endpoint's model; prints its path remote:<id>")
    a.add_argument("url", help="the API's base URL, e.g. http://gpu-box:8080/v1")
    a.add_argument("model", help="the model's name at the endpoint (see /v1/models)")
    _add_key_args(a)
    a.add_argument("--name", default="", help="display name (default: the model name)")
    a.add_argument("--no-llama-extras", action="store_true",
                   help="send only OpenAI's sampler fields (no top_k, min_p, repeat_penalty…)")
    a.add_argument("--check", action="store_true",
                   help="list the endpoint's models first; refuse a model it does not serve")

    e = rsub.add_parser("edit", help="change an entry; its id and path stay")
    e.add_argument("id", help="ID or remote:ID")
    e.add_argument("--url", help="new base URL")
    e.add_argument("--model", help="new model name at the endpoint")
    _add_key_args(e, allow_none=True)
    e.add_argument("--name", help="new display name ('' = the model name)")
    extras = e.add_mutually_exclusive_group()
    extras.add_argument("--llama-extras", dest="llama_extras", action="store_true", default=None)
    extras.add_argument("--no-llama-extras", dest="llama_extras", action="store_false")
    e.add_argument("--check", action="store_true", help="check the endpoint before saving")

    ls = rsub.add_parser("list", help="the stored endpoints (keys are never shown)")
    ls.add_argument("--json", action="store_true")

    rm = rsub.add_parser("remove", help="forget an entry and its key")
    rm.add_argument("id", help="ID or remote:ID")

    c = rsub.add_parser("check", help="is it reachable, is the key accepted, is the model listed")
    c.add_argument("id", help="ID or remote:ID")


def _add_key_args(p: argparse.ArgumentParser, allow_none: bool = False) -> None:
    key = p.add_mutually_exclusive_group()
    key.add_argument("--key", help="API key (it stays in your shell history: --key-env avoids it)")
    key.add_argument("--key-env", metavar="VAR", help="read the API key from this variable")
    if allow_none:
        key.add_argument("--no-key", action="store_true", help="forget the stored key")


def local_only(args: argparse.Namespace) -> int | None:
    """Refuse, in words, a verb that needs a model file when --model names a remote entry."""
    model = getattr(args, "model", None) or ""
    if args.verb in LOCAL_ONLY_VERBS and entries.is_remote_path(model):
        return _fail(f"{args.verb} {LOCAL_ONLY_VERBS[args.verb]} and needs a local model file; "
                     f"{model} is a remote endpoint", EXIT_BAD_INPUT)
    return None


def cmd_remote(args: argparse.Namespace) -> int:
    handler = {"add": _cmd_add, "edit": _cmd_edit, "list": _cmd_list, "remove": _cmd_remove,
               "check": _cmd_check}[args.remote_verb]
    try:
        return handler(args)
    except RemoteModelError as exc:  # unknown id or a damaged file: the message holds no key
        return _fail(str(exc), EXIT_BAD_INPUT)


# --- the verbs ---


def _cmd_add(args: argparse.Namespace) -> int:
    key = _key_from_args(args)
    if key is None:
        return EXIT_BAD_INPUT
    model = RemoteModel(base_url=args.url.strip(), model=args.model.strip(), api_key=key,
                        name=args.name.strip(), llama_extras=not args.no_llama_extras)
    refused = _refusal(model, args.check, "not added")
    if refused is not None:
        return refused
    entry = entries.add(model)
    print(f"added {entry.display_name}: {entry.details}", file=sys.stderr)
    print(entry.path)  # stdout holds the path alone, for `$(openlid remote add …)`
    return EXIT_OK


def _refusal(model: RemoteModel, check: bool, verdict: str) -> int | None:
    """The exit code when `model` cannot be stored (said in words), or None when it can."""
    try:
        model.validated()
    except RemoteError as exc:
        return _fail(entries.redact(str(exc), model), EXIT_BAD_INPUT)
    problem = check_model(model) if check else ""
    return _fail(f"{verdict}: {problem}", EXIT_FAIL) if problem else None


def _cmd_edit(args: argparse.Namespace) -> int:
    entry = entries.get(_entry_id(args.id))
    old = entry.model
    key = "" if args.no_key else _key_from_args(args, default=old.api_key)
    if key is None:
        return EXIT_BAD_INPUT
    model = replace(
        old, api_key=key,
        base_url=old.base_url if args.url is None else args.url.strip(),
        model=old.model if args.model is None else args.model.strip(),
        name=old.name if args.name is None else args.name.strip(),
        llama_extras=old.llama_extras if args.llama_extras is None else args.llama_extras,
    )
    refused = _refusal(model, args.check, "not changed")
    if refused is not None:
        return refused
    entry = entries.update(entry.id, model)
    print(f"changed {entry.path}: {entry.display_name}, {entry.details}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    saved = entries.list_entries()
    if args.json:
        print(json.dumps([entry_json(e) for e in saved], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not saved:
        print("no remote models; `openlid remote add URL MODEL` adds one")
    for e in saved:
        key = "key" if e.model.api_key else "no key"
        extras = "" if e.model.llama_extras else ", OpenAI fields only"
        print(f"{e.path:20} {e.display_name:30} {e.details} ({key}{extras})")
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    entry = entries.get(_entry_id(args.id))  # an unknown id is an error here, in words
    entries.remove(entry.id)
    print(f"removed {entry.path} ({entry.display_name})")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    entry = entries.get(_entry_id(args.id))
    problem = check_model(entry.model)
    if problem:
        return _fail(f"{entry.path}: {problem}", EXIT_FAIL)
    key = "key accepted" if entry.model.api_key else "no key needed"
    print(f"ok: {public_url(entry.model.base_url)} answers, {key}, "
          f"and serves '{entry.model.model}'")
    return EXIT_OK


# --- helpers ---


def check_model(model: RemoteModel, timeout: float = CHECK_TIMEOUT_S) -> str:
    """What is wrong with an endpoint, in words ("" when it is reachable, accepts the key and
    lists the model). The words never hold the key or the URL's credentials."""
    try:
        names = RemoteEngine(model, timeout=timeout).list_models()
    except RemoteError as exc:
        return entries.explain(exc, model, "--key or --key-env sets one")
    return "" if model.model in names else entries.not_served(model, names)


def entry_json(entry: RemoteEntry) -> dict[str, Any]:
    """An entry for `list --json`: the public URL, and whether there is a key, never the key."""
    m = entry.model
    return {"id": entry.id, "path": entry.path, "name": m.name, "display_name": m.display_name,
            "base_url": public_url(m.base_url), "model": m.model,
            "llama_extras": m.llama_extras, "has_key": bool(m.api_key)}


def _entry_id(value: str) -> str:
    return value.strip().removeprefix(REMOTE_PREFIX)


def _key_from_args(args: argparse.Namespace, default: str = "") -> str | None:
    """The key from --key or --key-env (`default` when neither); None after saying what is
    wrong."""
    if args.key_env:
        key = os.environ.get(args.key_env, "").strip()
        if not key:
            _fail(f"the environment variable {args.key_env} is not set or empty", EXIT_BAD_INPUT)
            return None
        return key
    if args.key is not None:
        return str(args.key).strip()
    return default


def _fail(message: str, code: int) -> int:
    print(f"openlid: {message}", file=sys.stderr)
    return code
