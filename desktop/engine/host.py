"""EngineHost: starts the engine worker process and turns its pipe into events.

Runs in the app or the CLI; never imports llama_cpp. Calls come from one owner thread (the GUI
thread or the CLI's main thread); one named reader thread ("openlid-engine-reader") receives
events and hands them to `on_event` on that reader thread — the GUI's `EngineService` re-emits
them as queued signals, the CLI reads them from `events`. When the worker dies the reader emits
`Crashed` with the exit status in words and the telling line of the worker's log; nothing
restarts by itself.

Each worker writes to its own private log (`desktop.core.engine_logs`): by default in Openlid's
log folder, which follows OPENLID_HOME. Starting a worker creates that file (0600, never through a
link) and prunes old engine logs; when that cannot be done safely the request is answered with
`EngineError(kind="engine_log")` in words, and no worker starts.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from desktop.core.engine_logs import engine_log_dir, new_engine_log, prune_engine_logs
from desktop.core.model_info import LoadSettings
from desktop.core.private_files import UnsafePathError
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.crash import describe_exit, read_log_tail, telling_line

EventCallback = Callable[[P.EngineEvent], None]


class EngineLogError(OSError):
    """The worker's log file could not be created safely, so no worker was started."""


class EngineHost:
    def __init__(self, on_event: EventCallback | None = None, log_dir: str | Path | None = None,
                 nice: int = 0):
        """`nice` > 0 lowers the worker's CPU priority (the GUI passes one: see worker.main).
        `log_dir`: where worker logs go (default: Openlid's log folder); created on first start."""
        self.on_event = on_event
        self.nice = nice
        self.events: queue.Queue[P.EngineEvent] = queue.Queue()
        self.log_dir = Path(log_dir) if log_dir else None
        self.log_path = ""
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._process: Any = None
        self._conn: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._last_request = 0

    # --- process lifetime ---

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start a worker unless one runs. Raises EngineLogError, in words, when its log cannot
        be created safely; `load`, `generate`… report that as an EngineError instead."""
        if self.alive:
            return
        self._join_dead()
        self.log_path = str(self._new_log())
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        from desktop.engine import worker

        process = ctx.Process(
            target=worker.main, args=(child, self.log_path, self.nice), name="openlid-engine",
            daemon=True,
        )
        process.start()
        child.close()  # only the worker holds that end: its death gives us EOF
        self._process, self._conn, self._stopping = process, parent, False
        self._reader = threading.Thread(
            target=self._read_loop, args=(parent, process), name="openlid-engine-reader",
            daemon=True,
        )
        self._reader.start()

    def _new_log(self) -> Path:
        try:
            folder = engine_log_dir(self.log_dir)  # None: Openlid's log folder
            path = new_engine_log(folder, f"engine-{time.strftime('%Y%m%d-%H%M%S')}-"
                                          f"{os.getpid()}-{next(self._ids)}")
        except UnsafePathError as exc:
            raise EngineLogError(str(exc)) from exc
        except OSError as exc:
            where = exc.filename or self.log_dir or "Openlid's log folder"
            raise EngineLogError(
                f"cannot create the engine log in {where}: {exc.strerror or exc}") from exc
        # The new log is among the newest; a log another worker still writes is skipped too.
        prune_engine_logs(folder, keep=(path,))
        return path

    def _join_dead(self) -> None:
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        self._reader = None
        self._process = None
        self._conn = None

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker: ask, then terminate, then kill. Safe to call twice."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        with contextlib.suppress(OSError, ValueError):
            self._send(P.ShutdownRequest())
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(2)
        if process.is_alive():
            process.kill()
            process.join(2)
        if self._conn is not None:
            self._conn.close()
        self._join_dead()

    def kill(self) -> None:
        """SIGKILL the worker (tests, and a last resort); the reader reports Crashed."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    # --- requests ---

    def _send(self, message: Any) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _request(self, build: Callable[[int], Any]) -> int:
        try:
            self.start()
        except EngineLogError as exc:  # no safe log, so no worker: the request fails in words
            request_id = next(self._ids)
            words = str(exc)
            words = f"The engine did not start. {words[:1].upper()}{words[1:]}"
            self._dispatch(P.EngineError(request_id, "engine_log", words))
            return request_id
        request_id = next(self._ids)
        self._last_request = request_id
        self._send(build(request_id))
        return request_id

    def load(self, path: str | Path, settings: LoadSettings | None = None) -> int:
        settings = (settings or LoadSettings()).validated()
        return self._request(lambda rid: P.LoadRequest(rid, str(path), settings))

    def generate(
        self,
        prompt: P.PromptPieces = (),
        settings: SamplerSettings | None = None,
        *,
        prompt_tokens: tuple[int, ...] = (),
        capture: bool = True,
        add_bos: bool = True,
        forced_tokens: tuple[int, ...] = (),
        images: tuple[bytes, ...] = (),
    ) -> int:
        settings = (settings or SamplerSettings()).validated()
        return self._request(
            lambda rid: P.GenerateRequest(
                rid, prompt, prompt_tokens, settings, capture, add_bos, forced_tokens, images
            )
        )

    def replay(
        self,
        context_tokens: tuple[int, ...],
        token_id: int,
        step: int,
        settings: SamplerSettings,
        n_prompt: int,
    ) -> int:
        settings = settings.validated()
        return self._request(
            lambda rid: P.ReplayRequest(rid, context_tokens, token_id, step, settings, n_prompt)
        )

    def tokenize(self, prompt: P.PromptPieces, add_bos: bool = True,
                 images: tuple[bytes, ...] = ()) -> int:
        return self._request(lambda rid: P.TokenizeRequest(rid, prompt, add_bos, images))

    def rescore(self, prompt: P.PromptPieces, ablated: P.PromptPieces,
                reply_tokens: tuple[int, ...], add_bos: bool = True) -> int:
        """Score `reply_tokens` under `prompt` and under `ablated`; answered by `Rescored`."""
        return self._request(
            lambda rid: P.RescoreRequest(rid, prompt, ablated, reply_tokens, add_bos))

    def embed(self, model_path: str | Path, texts: tuple[str, ...]) -> int:
        """Unit-length vectors of `texts` from an embedding GGUF; answered by `Embedded`."""
        return self._request(lambda rid: P.EmbedRequest(rid, str(model_path), tuple(texts)))

    def cancel(self) -> None:
        if self.alive:
            self._send(P.CancelRequest(self._last_request))

    def unload(self) -> int:
        return self._request(lambda rid: P.UnloadRequest(rid))

    # --- events ---

    def _read_loop(self, conn: Any, process: Any) -> None:
        while True:
            try:
                event = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(event, P.Steps):
                for record in event.records:
                    self._dispatch(P.Step(event.request_id, record))
            else:
                self._dispatch(event)
        if self._stopping:
            return
        process.join(timeout=5)
        lines = read_log_tail(self.log_path)
        self._dispatch(
            P.Crashed(
                request_id=self._last_request,
                exit_code=process.exitcode,
                reason=f"The engine process {describe_exit(process.exitcode)}.",
                telling_line=telling_line(lines),
                log_path=self.log_path,
            )
        )

    def _dispatch(self, event: P.EngineEvent) -> None:
        # With a listener nobody reads the queue: filling it would keep every StepRecord alive.
        if self.on_event is not None:
            self.on_event(event)
        else:
            self.events.put(event)

    def wait(self, request_id: int, timeout: float | None = None) -> Iterator[P.EngineEvent]:
        """Yield events of one request until its final event (for the CLI and tests; only for a
        host built without `on_event`).

        Final events: Loaded, Done, Replayed, Tokenized, Rescored, Embedded, Unloaded, EngineError,
        Crashed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"no answer from the engine in {timeout} s") from None
            if event.request_id != request_id:
                # A stale event, or the Crashed of a worker that died after an earlier request
                # (it names the last request sent): that crash is news for nobody waiting now.
                continue
            yield event
            if not isinstance(event, P.Step):
                return
