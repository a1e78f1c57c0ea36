"""`openlid search | files | download`: the Hugging Face Hub from a terminal, over the same core
as the GUI's browser and download list (desktop.core.hub.client,
desktop.core.downloads.manager). No Qt.

`desktop.cli.main` mounts these verbs with `add_hub_parsers` and `HUB_HANDLERS`; `python -m
desktop.cli.hub` runs them alone. The Hub is HF_ENDPOINT or `--endpoint`; the token is
huggingface_hub's stored login (or HF_TOKEN), never a command-line argument. A download is
resumable: run the same command again after Ctrl-C, a lost connection or a kill, and it goes on
from the bytes on disk. Runs in the main thread; downloads in the manager's worker threads,
which print the progress line. Exit codes: 0 fine, 1 failure, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from desktop.core.downloads.progress import DownloadsSnapshot, format_duration, format_size
from desktop.core.downloads.store import JOB_DONE
from desktop.core.hub.client import (
    FORMATS,
    SORTS,
    HubClient,
    HubError,
    ModelUnit,
    RepoDetails,
    SearchPage,
    SearchQuery,
)
from desktop.core.hub.filters import parse_params, parse_size
from desktop.core.hub.quant import KIND_OTHER, KIND_PROJECTOR

# The download manager (its fetchers, the direct-HTTP path) is imported by `cmd_download` alone:
# the other verbs, and `openlid --help`, do not need it.

__all__ = ["HUB_HANDLERS", "add_hub_parsers", "choose_units", "main"]

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class SelectionError(ValueError):
    """The files asked for do not name one downloadable model."""


def add_hub_parsers(sub: Any) -> None:
    """Add `search`, `files` and `download` to an argparse subparsers object."""
    p = sub.add_parser("search", help="search the Hugging Face Hub for models")
    p.add_argument("query", nargs="?", default="", help="words in the model name")
    p.add_argument("--format", dest="fmt", choices=FORMATS, help="only models in this format")
    p.add_argument("--author", help="only models by this user or organisation")
    p.add_argument("--min-params", type=_arg(parse_params), metavar="N",
                   help="at least this many parameters, e.g. 1B (the Hub filters)")
    p.add_argument("--max-params", type=_arg(parse_params), metavar="N",
                   help="at most this many parameters, e.g. 8B (the Hub filters)")
    p.add_argument("--quant", help="only repos offering this quant, e.g. Q4_K_M "
                   "(filtered on each page here)")
    p.add_argument("--min-size", type=_arg(parse_size), metavar="SIZE",
                   help="a model file of at least this size, e.g. 500MB (filtered on each page)")
    p.add_argument("--max-size", type=_arg(parse_size), metavar="SIZE",
                   help="a model file of at most this size, e.g. 5GB (filtered on each page)")
    p.add_argument("--sort", choices=tuple(SORTS), default="downloads")
    p.add_argument("--limit", type=int, default=20, help="results per page (default 20)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--page", type=int, default=1, help="page number, from 1")
    where.add_argument("--cursor", help="the next-page cursor a previous search printed")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("files", help="list a Hub repo's models: quant, size, sha256, shards")
    p.add_argument("repo", help="owner/name")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("download", help="download a model from the Hub (resumable)")
    p.add_argument("repo", help="owner/name")
    p.add_argument("file", nargs="*", help="file(s) in the repo (a shard brings its whole set)")
    p.add_argument("--quant", help="the model with this quant label, e.g. Q4_K_M")
    p.add_argument("--dest", help="folder (default: the models folder/<owner>/<name>)")
    p.add_argument("--concurrency", type=int, default=2, help="files fetched at once")
    _common(p)


def _arg(parse: Callable[[str], int]) -> Callable[[str], int]:
    """An argparse type from a parser that raises ValueError with a readable message."""

    def convert(text: str) -> int:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or the Hub)")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")


def _fail(message: str, code: int = EXIT_FAIL) -> int:
    print(f"openlid: {message}", file=sys.stderr)
    return code


def _search_query(args: argparse.Namespace) -> SearchQuery:
    return SearchQuery(
        args.query, args.fmt, args.author, args.sort, max(1, args.limit),
        min_params=args.min_params, max_params=args.max_params, quant=args.quant,
        min_size=args.min_size, max_size=args.max_size,
    )


def _fetch_page(client: HubClient, query: SearchQuery, args: argparse.Namespace) -> SearchPage:
    if args.cursor:
        return client.search(query, cursor=args.cursor)
    if args.page < 1:
        raise ValueError("--page counts from 1")
    if args.page == 1:
        return client.search(query)
    # Earlier pages only lead the way: the Hub pages by cursor, and their results are not
    # shown, so the page filters (which may cost a request per repo) are left off for them.
    page = client.search(replace(query, quant=None, min_size=None, max_size=None))
    for _ in range(args.page - 2):
        if page.next_url is None:
            return SearchPage((), None)
        page = client.next_page(page.next_url)
    return client.next_page(page.next_url, query) if page.next_url else SearchPage((), None)


def _filter_note(page: SearchPage) -> str:
    if not page.filtered:
        return ""
    return (f"{len(page.models)} of {page.scanned} results on this page match the "
            f"{' and '.join(page.filtered)} filter (filtered on this page, not by the Hub)")


def cmd_search(args: argparse.Namespace) -> int:
    try:
        query = _search_query(args)
        query.params()  # refuse a bad range before the network
    except ValueError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    with HubClient(args.endpoint) as client:
        try:
            page = _fetch_page(client, query, args)
        except HubError as exc:
            return _fail(exc.message)
        except ValueError as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
    if args.json:
        print(json.dumps({
            "models": [m.to_json() for m in page.models],
            "next_cursor": page.cursor,
            "scanned": page.scanned,
            "filtered_on_page": list(page.filtered),
        }, indent=2))
        return EXIT_OK
    if not page.models:
        print("no models found")
    for m in page.models:
        flags = " gated" if m.gated else ""
        updated = (m.updated or "")[:10]
        params = _params_text(m.params)
        size = f" {format_size(m.size)}" if m.size is not None else ""
        print(f"{m.repo_id:50} {params:>7}{size} {m.downloads or 0:>10,} dl "
              f"{m.likes or 0:>6,} likes  {updated}  {m.license or '-'}{flags}")
    if note := _filter_note(page):
        print(note, file=sys.stderr)
    if page.cursor:
        print(f"more: --cursor {page.cursor}", file=sys.stderr)
    return EXIT_OK


def _params_text(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n:,}"


def _unit_line(u: ModelUnit) -> str:
    n = len(u.files)
    files = f"{n} shards" if u.kind == "gguf" and n > 1 else f"{n} files" if n > 1 else "1 file"
    missing = "  INCOMPLETE: shards missing" if not u.complete else ""
    return f"  {u.name:44} {u.kind:12} {u.quant or '-':10} {format_size(u.size):>10}  {files}" \
        + missing


def cmd_files(args: argparse.Namespace) -> int:
    with HubClient(args.endpoint) as client:
        try:
            details = client.repo(args.repo, args.revision)
        except HubError as exc:
            return _fail(exc.message)
    if args.json:
        print(json.dumps(details.to_json(), indent=2))
        return EXIT_OK
    s = details.summary
    gated = f", gated ({s.gated})" if s.gated else ""
    print(f"{s.repo_id} @ {(details.commit or '?')[:12]}  licence {s.license or '?'}{gated}")
    print(f"  {'MODEL':44} {'FORMAT':12} {'QUANT':10} {'SIZE':>10}  FILES")
    for unit in details.units:
        print(_unit_line(unit))
        if len(unit.files) > 1 or unit.files[0].path != unit.name:
            for f in unit.files:
                print(f"      {f.path:60} {format_size(f.size):>10}  "
                      f"{(f.sha256 or f.blob_id or '')[:16]}")
    grouped = {f.path for u in details.units for f in u.files}
    rest = [f.path for f in details.files if f.path not in grouped]
    if rest:
        print(f"  other files: {', '.join(rest)}")
    return EXIT_OK


def _loose_unit(details: RepoDetails, path: str) -> ModelUnit:
    match = [f for f in details.files if f.path == path]
    if not match:
        raise SelectionError(f"{details.summary.repo_id} has no file {path}")
    return ModelUnit(path, KIND_OTHER, match[0].quant, (match[0],))


def choose_units(details: RepoDetails, files: Sequence[str], quant: str | None) -> list[ModelUnit]:
    """The models a `download` command means: the groups of the named files, the model with
    the named quant, or the repo's only model. Raises SelectionError with the choices."""
    models = [u for u in details.units if u.kind != KIND_PROJECTOR]
    chosen: list[ModelUnit] = []
    if files:
        for path in files:
            unit = next((u for u in details.units if any(f.path == path for f in u.files)),
                        None) or _loose_unit(details, path)
            if unit not in chosen:
                chosen.append(unit)
    elif quant:
        chosen = [u for u in models if (u.quant or "").upper() == quant.upper()]
        if not chosen:
            have = sorted({u.quant for u in models if u.quant})
            raise SelectionError(f"no model with quant {quant} in {details.summary.repo_id}; "
                                 f"available: {', '.join(have) or 'none labelled'}")
        if len(chosen) > 1:
            names = ", ".join(u.name for u in chosen)
            raise SelectionError(f"several models have quant {quant}: {names}; name the file")
    elif len(models) == 1:
        chosen = models
    else:
        if not models:
            raise SelectionError(f"{details.summary.repo_id} has no GGUF or safetensors model")
        names = ", ".join(f"{u.name} ({u.quant or u.kind})" for u in models)
        raise SelectionError(f"{details.summary.repo_id} has several models; choose one with "
                             f"--quant or a file name: {names}")
    for unit in chosen:
        if not unit.complete:
            raise SelectionError(f"{unit.name} is incomplete on the Hub: shards are missing")
    return chosen


class _ProgressLine:
    """Prints the download progress from the manager's worker threads (~1 Hz)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._lock = threading.Lock()
        self.width = 0

    def __call__(self, snap: DownloadsSnapshot) -> None:
        if not snap.total_bytes:  # nothing moving (all done, or sizes unknown)
            return
        pct = f"{100 * snap.done_bytes / snap.total_bytes:5.1f}%" if snap.total_bytes else "   ?"
        eta = f" ETA {format_duration(snap.eta)}" if snap.eta is not None else ""
        line = (f"{pct} {format_size(snap.done_bytes)} / {format_size(snap.total_bytes)} "
                f"{format_size(snap.speed)}/s{eta}")
        with self._lock:
            if self._tty:
                self._out.write("\r" + line.ljust(self.width))
                self.width = len(line)
            else:
                self._out.write(line + "\n")
            self._out.flush()

    def end(self) -> None:
        with self._lock:
            if self._tty and self.width:
                self._out.write("\n")
                self._out.flush()


def cmd_download(args: argparse.Namespace) -> int:
    from desktop.core import paths
    from desktop.core.downloads.manager import DownloadError, DownloadManager

    with HubClient(args.endpoint) as client:
        try:
            details = client.repo(args.repo, args.revision)
            units = choose_units(details, args.file, args.quant)
        except HubError as exc:
            return _fail(exc.message)
        except SelectionError as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
    dest = Path(args.dest) if args.dest else paths.models_dir() / Path(*args.repo.split("/"))
    progress = _ProgressLine(sys.stderr)
    manager = DownloadManager(paths.database_path(), concurrency=max(1, args.concurrency),
                              endpoint=args.endpoint)
    manager.subscribe(progress)
    try:
        try:
            jobs = [manager.enqueue(details.summary.repo_id, u.files, dest, details.commit)
                    for u in units]
        except DownloadError as exc:
            return _fail(str(exc))
        # Only this command's jobs: the shared queue also holds the app's downloads.
        manager.start(only=jobs)
        results = [manager.wait(job_id) for job_id in jobs]
    except KeyboardInterrupt:
        progress.end()
        return _fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
    finally:
        manager.close()
    progress.end()
    code = EXIT_OK
    for job in results:
        if job.state == JOB_DONE:
            for f in job.files:
                print(f.destination(job.dest_dir))
        else:
            code = _fail(f"{job.state}: {job.message or 'stopped'}")
    return code


HUB_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "search": cmd_search,
    "files": cmd_files,
    "download": cmd_download,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openlid", description="Openlid and the Hugging Face Hub")
    add_hub_parsers(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(argv)
    return HUB_HANDLERS[args.verb](args)


if __name__ == "__main__":
    sys.exit(main())
