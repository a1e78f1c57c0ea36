"""`openlid <verb>`: the command-line face of the same core the GUI uses. No Qt here.

Runs in the main thread of a terminal process; inference goes through EngineHost, so a crash in
llama.cpp ends only the worker and the CLI reports it. Exit codes: 0 fine, 1 failure,
2 bad input (invalid model file, bad settings).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

from desktop import __version__
from desktop.cli.args import (
    add_model_args,
    add_sampler_args,
    load_settings,
    model_path,
    sampler_settings_from_args,
)
from desktop.core.database import DatabaseDamaged, damage_detail
from desktop.core.sampling import SettingsError
from desktop.core.stop_matcher import StopMatcher

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
# Every verb, in `--help`'s order. A run that names one builds (and imports) only that verb's
# parser: `openlid inspect FILE` does not load the Hub client, numpy or the server.
VERBS = ("inspect", "generate", "bench", "chat", "models", "import", "doctor", "template",
         "search", "files", "download", "serve", "remote", "db", "compare")


def verb_named(argv: Sequence[str]) -> str | None:
    """The verb `argv` names (its first word that is not an option), if it is one of VERBS."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in VERBS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: only the verb it names, or every verb (None, `--help`, a word
    that is no verb: argparse then lists them all)."""
    verb = verb_named(argv) if argv is not None else None

    def wanted(*verbs: str) -> bool:
        return verb is None or verb in verbs

    parser = argparse.ArgumentParser(prog="openlid", description="Openlid: see inside a local LLM")
    parser.add_argument("--version", action="version", version=f"openlid {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True)
    if wanted("inspect"):
        _add_inspect_parser(sub)
    if wanted("generate"):
        _add_generate_parser(sub)
    if wanted("bench"):
        _add_bench_parser(sub)
    if wanted("chat"):
        _add_chat_parser(sub)
    _mount(sub, wanted)
    return parser


def _add_inspect_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="validate a GGUF file and show its metadata")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")


def _add_generate_parser(sub: Any) -> None:
    p = sub.add_parser("generate", help="generate text and show every sampling step")
    add_model_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="raw completion: the text is continued as typed")
    src.add_argument("--chat", action="store_true", help="chat: render --user through a template")
    p.add_argument("--user", help="the user's message (with --chat)")
    p.add_argument("--system", default="", help="system prompt (with --chat)")
    p.add_argument("--template", default=None, help="template preset id (with --chat)")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per StepRecord")
    add_sampler_args(p)


def _add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure the engine against a bare llama-cpp-python loop, "
                       "sampler chain by sampler chain")
    add_model_args(p)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best counts")
    p.add_argument("--chains", default="",
                   help="only these sampler chains, comma-separated (default: every one)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--llama-bench", metavar="PATH", default=None,
                   help="llama.cpp's llama-bench to run alongside as the decode ceiling "
                        "(default: $OPENLID_LLAMA_BENCH, or the one packaging/llama_tools.sh "
                        "built)")
    p.add_argument("--chart", action="store_true",
                   help="also: tokens/s with the live chart vs hidden (a Qt run, offscreen)")
    p.add_argument("--ui", action="store_true",
                   help="also: the longest GUI stall while a reply streams, and a chart slider's "
                   "what-if latency at a 1k-token context (a Qt run, offscreen)")
    p.add_argument("--download", action="store_true",
                   help="instead: Openlid's download path vs a plain HTTP GET of the same file "
                   "from a local server (no model needed)")
    p.add_argument("--structured", action="store_true",
                   help="instead: tokens/s with a JSON schema (and any JSON) against without")
    p.add_argument("--size", type=int, default=256, help="with --download: file size in MiB")
    p.add_argument("--rate", type=float, default=0.0,
                   help="with --download: pace the server to this many MB/s (0 = loopback)")


def _add_chat_parser(sub: Any) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal (history sent every turn)")
    add_model_args(p)
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--template", default=None, help="template: preset or saved id, or .jinja file")
    p.add_argument("--show-prompt", action="store_true",
                   help="print the exact rendered prompt before each reply")
    p.add_argument("--xray", action="store_true",
                   help="after each reply: the prompt's tokens per part and the KV-cache reuse")
    p.add_argument("--without", metavar="PART", default=None,
                   help="after each reply: re-score it teacher-forced without one part of its "
                        "prompt (system, instructions, documents or turn:N)")
    p.add_argument("--attach", action="append", default=[], metavar="FILE",
                   help="attach a document (txt, md, code, pdf, docx; repeatable): short ones "
                        "are sent whole, long ones searched for each message")
    p.add_argument("--embedding-model", metavar="GGUF", default=None,
                   help="search attached documents by meaning (cosine similarity of this "
                        "embedding model's vectors) instead of keywords (BM25)")
    add_sampler_args(p)


# The verbs other modules mount: (verbs, module, the function that adds their parsers). A
# module is imported only when one of its verbs is wanted.
_MOUNTED = (
    (("models", "import"), "desktop.cli.library", "add_library_parsers"),
    (("doctor",), "desktop.cli.doctor", "add_doctor_parser"),
    (("template",), "desktop.cli.prompts", "add_template_parser"),
    (("search", "files", "download"), "desktop.cli.hub", "add_hub_parsers"),
    (("serve",), "desktop.cli.serve", "add_serve_parser"),
    (("remote",), "desktop.cli.remote", "add_remote_parser"),
    (("db",), "desktop.cli.db", "add_db_parser"),
    (("compare",), "desktop.cli.compare", "add_compare_parser"),
)


def _mount(sub: Any, wanted: Callable[..., bool]) -> None:
    for verbs, module, adder in _MOUNTED:
        if wanted(*verbs):
            getattr(importlib.import_module(module), adder)(sub)


def main(argv: Sequence[str] | None = None) -> int:
    from desktop.cli.db import damaged_message

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "model", None):  # no model named: nothing to refuse
        from desktop.cli.remote import local_only

        if (refused := local_only(args)) is not None:
            return refused
    handler = {
        "search": cmd_hub,
        "files": cmd_hub,
        "download": cmd_hub,
        "inspect": cmd_inspect,
        "generate": cmd_generate,
        "bench": cmd_bench,
        "models": cmd_models,
        "import": cmd_import,
        "doctor": cmd_doctor,
        "template": cmd_template,
        "chat": cmd_chat,
        "serve": cmd_serve,
        "remote": cmd_remote,
        "db": cmd_db,
        "compare": cmd_compare,
    }[args.verb]
    try:
        return handler(args)
    except SettingsError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatabaseDamaged as exc:  # any verb that opens the database: say what to run
        print(damaged_message(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except sqlite3.DatabaseError as exc:  # damage found after the file was opened
        detail = damage_detail(exc)
        if detail is None:
            raise
        from desktop.core import paths

        print(damaged_message(DatabaseDamaged(paths.database_path(), detail)), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `openlid generate --jsonl | head`: the reader left; that is not an error.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from desktop.core.gguf_file.check import GgufProblem, check_gguf

    try:
        report = check_gguf(args.file)
    except GgufProblem as exc:
        if args.json:
            print(json.dumps({"valid": False, "problem": str(exc)}))
        print(f"openlid: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    data = report.to_json()
    if args.json:
        print(json.dumps({"valid": True, **data}, indent=2, default=str))
        return EXIT_OK
    print(f"{args.file}: valid GGUF v{report.version}")
    for key in ("architecture", "name", "quant", "n_params", "context_length", "block_count",
                "vocab_size", "tensor_count", "kv_count", "file_size"):
        print(f"  {key:15} {data.get(key)}")
    templates = ", ".join(report.chat_templates) or "none (Openlid picks a preset)"
    print(f"  {'chat templates':15} {templates}")
    if report.split_count > 1:
        print(f"  {'shards':15} {report.split_count}")
    return EXIT_OK


def _chat_prompt(args: argparse.Namespace, info: Any) -> tuple[tuple[str, bool], ...]:
    from desktop.cli.prompts import render_chat_prompt

    return render_chat_prompt(args, info)


def cmd_generate(args: argparse.Namespace) -> int:
    from desktop.engine import protocol as P
    from desktop.engine.host import EngineHost

    if args.chat and not args.user:
        print("openlid: --chat needs --user TEXT", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = sampler_settings_from_args(args)
    load = load_settings(args)
    host = EngineHost()
    try:
        info = None
        for event in host.wait(host.load(model_path(args), load)):
            if isinstance(event, P.Loaded):
                info = event.info
            else:
                return _report_failure(event)
        if args.prompt is not None:
            prompt: tuple[tuple[str, bool], ...] = ((args.prompt, False),)
        else:
            from desktop.core.templates.prompt import TemplateError

            try:
                prompt = _chat_prompt(args, info)
            except (TemplateError, KeyError) as exc:
                print(f"openlid: template: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
        stops = StopMatcher(settings.stop)
        for event in host.wait(host.generate(prompt, settings)):
            if isinstance(event, P.Step):
                if args.jsonl:
                    print(json.dumps(event.record.to_json(), ensure_ascii=False), flush=True)
                else:
                    stops.feed(event.record.text)
                    sys.stdout.write(stops.releasable())
                    sys.stdout.flush()
            elif isinstance(event, P.Done):
                if args.jsonl:
                    print(json.dumps({"done": event.result.to_json()}, ensure_ascii=False))
                else:
                    sys.stdout.write(stops.releasable() + "\n")
                return EXIT_OK
            else:
                return _report_failure(event)
        return EXIT_FAIL
    finally:
        host.shutdown()


def _report_failure(event: object) -> int:
    from desktop.engine import protocol as P

    if isinstance(event, P.EngineError):
        print(f"openlid: {event.message}", file=sys.stderr)
        bad = event.kind in ("invalid_model", "load_failed", "bad_request", "context_overflow")
        return EXIT_BAD_INPUT if bad else EXIT_FAIL
    if isinstance(event, P.Crashed):
        print(f"openlid: {event.reason}", file=sys.stderr)
        if event.telling_line:
            print(f"openlid: engine log: {event.telling_line}", file=sys.stderr)
        print(f"openlid: full log: {event.log_path}", file=sys.stderr)
        return EXIT_FAIL
    print(f"openlid: unexpected engine event {event!r}", file=sys.stderr)
    return EXIT_FAIL


def cmd_bench(args: argparse.Namespace) -> int:
    if args.download:
        return _download_bench(args)
    if args.structured:
        from desktop.bench.grammar import cmd_grammar_bench

        return cmd_grammar_bench(args, str(model_path(args)), load_settings(args))
    if args.draft is not None or args.draft_model:
        from desktop.bench.draft import cmd_draft_bench

        return cmd_draft_bench(args, str(model_path(args)), load_settings(args))
    from desktop.bench.engine import BenchError, format_report, run_bench

    model = str(model_path(args))
    try:
        report = run_bench(model, load_settings(args), args.tokens, args.repeat,
                           progress=lambda line: print(line, file=sys.stderr, flush=True),
                           only=tuple(n.strip() for n in args.chains.split(",") if n.strip()),
                           llama_bench=args.llama_bench)
    except BenchError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.bad_input else EXIT_FAIL
    # The GUI benchmarks run in their own process: the CLI never imports Qt.
    qt_runs = [("chart", "desktop.ui.bench.chart", ["--rounds", str(args.repeat)]),
               ("ui", "desktop.ui.bench.window", [])]
    for key, module, extra in qt_runs:
        if getattr(args, key):
            report[key] = _qt_bench(module, model, args, extra)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(format_report(report))
    for key, _, _ in qt_runs:
        if key in report:
            print(f"{key}: {json.dumps(report[key])}")
    return EXIT_OK


def _download_bench(args: argparse.Namespace) -> int:
    from desktop.bench.download import format_download_report, run_download_bench

    try:
        report = run_download_bench(args.size, max(3, args.repeat), args.rate)
    except ValueError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(report, indent=2) if args.json else format_download_report(report))
    return EXIT_OK


def _qt_bench(module: str, model: str, args: argparse.Namespace, extra: list[str]) -> Any:
    import subprocess

    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    out = subprocess.run(
        [sys.executable, "-m", module, "--model", model, "--tokens", str(args.tokens),
         "--threads", str(args.threads), *extra],
        capture_output=True, text=True, env=env, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    try:
        return json.loads("\n".join(lines[lines.index("{"):]) if "{" in lines else lines[-1])
    except (ValueError, IndexError):
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}


def cmd_template(args: argparse.Namespace) -> int:
    from desktop.cli.prompts import cmd_template as template

    return template(args, lambda: load_settings(args))


def cmd_chat(args: argparse.Namespace) -> int:
    from desktop.cli.chat import run_chat

    settings = sampler_settings_from_args(args)
    return run_chat(args, model_path(args), load_settings(args), settings)


def cmd_compare(args: argparse.Namespace) -> int:
    from desktop.cli.compare import cmd_compare as compare

    return compare(args, model_path(args), load_settings(args), _report_failure)


def cmd_doctor(args: argparse.Namespace) -> int:
    from desktop.cli.doctor import cmd_doctor as doctor

    return doctor(args, str(model_path(args)))


def cmd_hub(args: argparse.Namespace) -> int:
    from desktop.cli.hub import HUB_HANDLERS

    return HUB_HANDLERS[args.verb](args)


def cmd_serve(args: argparse.Namespace) -> int:
    from desktop.cli.serve import cmd_serve as serve

    return serve(args)


def cmd_remote(args: argparse.Namespace) -> int:
    from desktop.cli.remote import cmd_remote as remote

    return remote(args)


def cmd_db(args: argparse.Namespace) -> int:
    from desktop.cli.db import cmd_db as db

    return db(args)


def cmd_models(args: argparse.Namespace) -> int:
    from desktop.cli.library import cmd_models as models

    return models(args)


def cmd_import(args: argparse.Namespace) -> int:
    from desktop.cli.library import cmd_import as import_

    return import_(args)
