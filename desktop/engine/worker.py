"""The engine worker: a child process (spawn) that owns the inference library — llama.cpp for GGUF
files, transformers + torch for safetensors folders, HTTP for a remote endpoint ("remote:<id>",
see remote_session.py) — and answers the host's requests.

Single-threaded by design: one request at a time, and during a generation the pipe is polled
between tokens, so Cancel takes effect within one token. Anything llama.cpp prints (including a
GGML_ASSERT before an abort) goes to the worker's log file, where the host finds the telling line
if this process dies.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import os
import select
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.core.engine_logs import hold_lock
from desktop.core.private_files import open_private
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.engine import protocol as P
from desktop.engine.crash import EXIT_LOG_REFUSED
from desktop.engine.heap import keep_heap
from desktop.engine.session import MessageSession, Session, SessionFactory, TokenSession
from desktop.engine.vision_prompt import ImageError, prompt_tokens

if TYPE_CHECKING:  # the sampler imports llama_cpp: the worker does so only when it generates
    from desktop.engine.drafting import Drafter
    from desktop.engine.embedding import Embedder
    from desktop.engine.step_sampler import StepSampler


def main(conn: Connection, log_path: str, nice: int = 0) -> None:
    """Entry point of the child process.

    `nice` > 0: run below the parent's priority. Before any llama.cpp thread exists, so its
    threads inherit it. The window passes one: when llama.cpp's threads fill every core, the GUI
    thread would otherwise wait its turn behind them and a 10 ms repaint could take 60 ms; with
    the engine niced the GUI runs first, and the engine loses only the time the GUI really uses.
    """
    try:
        _redirect_output(log_path)
    except OSError as exc:
        # Not through a link, not into someone else's file: better no engine than that. The
        # message reaches the parent's stderr; the host reports the exit status in words.
        print(f"openlid engine: not starting: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_LOG_REFUSED)
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)
    keep_heap()
    # EOF or a broken pipe: the host went away and there is nothing left to answer.
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt):
        Worker(conn, log_path).serve()


def _redirect_output(log_path: str) -> None:
    """Point fds 1 and 2 at the private log the host created (0600, never through a link:
    `UnsafePathError` otherwise) and lock it while this process lives, so no pruning deletes it.
    """
    # File descriptors, not just sys.stderr: llama.cpp writes to fd 2 from C.
    fd = open_private(Path(log_path))
    hold_lock(fd)  # the lock lives on in fds 1 and 2 after this one closes
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - process lifetime
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - process lifetime


class Worker:
    def __init__(self, conn: Connection, log_path: str) -> None:
        self.conn = conn
        self.log_path = log_path
        self.session: Session | None = None  # LlamaSession, HfSession or RemoteSession
        self.drafter: Drafter | None = None  # speculative decoding's, when the load asked
        self.embedder: Embedder | None = None  # semantic retrieval's, kept across loads
        self.pending: collections.deque[object] = collections.deque()
        self._poller: select.poll | None = None  # see _waiting

    def send(self, event: object) -> None:
        self.conn.send(event)

    def serve(self) -> None:
        while True:
            msg = self.pending.popleft() if self.pending else self.conn.recv()
            if isinstance(msg, P.ShutdownRequest):
                self._unload()
                if self.embedder is not None:
                    self.embedder.close()
                return
            try:
                self.handle(msg)
            except Exception as exc:  # keep serving: one bad request must not end the worker
                print(traceback.format_exc(), file=sys.stderr, flush=True)
                self.send(P.EngineError(getattr(msg, "request_id", 0), "internal", str(exc)))

    def handle(self, msg: object) -> None:
        if isinstance(msg, P.LoadRequest):
            self.load(msg)
        elif isinstance(self.session, MessageSession) and self.session.answer(
            msg, self.send, self._cancel_requested
        ):
            pass  # a remote endpoint streams, and refuses what needs token ids, by itself
        elif isinstance(msg, P.GenerateRequest):
            self.generate(msg)
        elif isinstance(msg, P.ReplayRequest):
            self.replay(msg)
        elif isinstance(msg, P.RescoreRequest):  # "without this part" (engine.rescore)
            from desktop.engine.rescore import answer

            answer(self.session, msg, self.send)
        elif isinstance(msg, P.EmbedRequest):  # semantic retrieval (engine.embedding)
            from desktop.engine.embedding import answer as embed

            self.embedder = embed(self.embedder, msg, self.send)
        elif isinstance(msg, P.TokenizeRequest):
            session = self._require(msg.request_id)
            if session is not None:
                tokens = prompt_tokens(session, msg, self.send)
                if tokens is None:
                    return
                pieces = tuple(session.display_piece(t) for t in tokens)
                self.send(P.Tokenized(msg.request_id, tuple(tokens), pieces))
        elif isinstance(msg, P.UnloadRequest):
            self._unload()
            self.send(P.Unloaded(msg.request_id))
        elif isinstance(msg, P.CancelRequest):
            pass  # nothing running: a late cancel is harmless
        else:
            self.send(P.EngineError(0, "bad_request", f"unknown request {type(msg).__name__}"))

    def _require(self, request_id: int) -> TokenSession | None:
        """The loaded model for a token-level request, or None once the host is told why not."""
        session = self.session
        if session is None:
            self.send(P.EngineError(request_id, "bad_request", "no model is loaded"))
            return None
        if isinstance(session, MessageSession):  # answered by the session unless it declined
            self.send(P.EngineError(request_id, "unsupported", "the loaded model cannot do this"))
            return None
        return session

    def _unload(self) -> None:
        if self.drafter is not None:
            self.drafter.close()
            self.drafter = None
        if self.session is not None:
            self.session.close()
            self.session = None

    # --- load ---

    def load(self, msg: P.LoadRequest) -> None:
        from desktop.core.gguf_file.check import GgufProblem, check_gguf
        from desktop.engine.session import LoadFailed
        from desktop.remote.entries import is_remote_path

        self._unload()
        session_class: SessionFactory
        if is_remote_path(msg.path):  # a stored OpenAI-compatible endpoint
            from desktop.engine.remote_session import RemoteSession

            session_class = RemoteSession
        elif is_transformers_path(msg.path):
            try:
                from desktop.engine.hf_session import HfSession

                session_class = HfSession
            except ImportError as exc:
                reason = (
                    f"safetensors models need torch and transformers ({exc}); install them with "
                    "pip install 'openlid[safetensors]'"
                )
                self.send(P.EngineError(msg.request_id, "load_failed", reason))
                return
        else:
            try:
                check_gguf(msg.path)
            except GgufProblem as exc:
                self.send(P.EngineError(msg.request_id, "invalid_model", str(exc)))
                return
            from desktop.engine.llama_session import LlamaSession

            session_class = LlamaSession

        try:
            self.session = session_class(msg.path, msg.settings, self.log_path)
        except LoadFailed as exc:
            self.send(P.EngineError(msg.request_id, "load_failed", str(exc)))
            return
        if msg.settings.draft != "none":
            from desktop.engine.drafting import load_drafter

            try:
                self.drafter = load_drafter(msg.settings, self.session, self.log_path)
            except LoadFailed as exc:
                self._unload()
                self.send(P.EngineError(msg.request_id, "load_failed", str(exc)))
                return
        self.send(P.Loaded(msg.request_id, self.session.info))

    # --- generate ---

    def generate(self, msg: P.GenerateRequest) -> None:
        from desktop.engine.session import ContextOverflow

        session = self._require(msg.request_id)
        if session is None:
            return
        settings = msg.settings.validated()
        started = time.perf_counter()
        prompt = list(msg.prompt_tokens) or prompt_tokens(session, msg, self.send)
        if prompt is None:
            return
        if not prompt:
            self.send(P.EngineError(msg.request_id, "bad_request", "the prompt is empty"))
            return
        try:
            reused = session.prepare(prompt)
        except ContextOverflow as exc:
            self.send(P.EngineError(msg.request_id, "context_overflow", str(exc)))
            return
        except ImageError as exc:  # an image no longer held, or one mtmd could not encode
            self.send(P.EngineError(msg.request_id, "bad_request", str(exc)))
            return
        prompt_done = time.perf_counter()
        decode_ms = (prompt_done - started) * 1000
        sampler = _sampler(msg.request_id, settings, session, self.send)
        if sampler is None:
            return
        try:
            sampler.accept([t for t in last_n(prompt, settings, session.n_ctx) if t >= 0])
            self._decode_loop(
                msg, session, sampler, prompt, reused, started, prompt_done, decode_ms
            )
        finally:
            sampler.close()

    def _decode_loop(
        self,
        msg: P.GenerateRequest,
        session: TokenSession,
        sampler: StepSampler,
        prompt: list[int],
        reused: int,
        started: float,
        prompt_done: float,
        decode_ms: float,
    ) -> None:
        from desktop.core.steps import GenerationDone, StepRecord, Timings, Usage
        from desktop.core.stop_matcher import StopMatcher
        from desktop.engine.session import piece_counts
        from desktop.engine.speculative import feed_for
        from desktop.engine.step_batch import StepBatcher

        settings = msg.settings
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(settings.stop)
        finish, first_token_at = "length", 0.0
        n_generated = 0
        steps = StepBatcher(self.send, msg.request_id)
        # A draft model cannot see the images, so an image prompt goes without drafting.
        feed = feed_for(session, None if min(prompt, default=0) < 0 else self.drafter, decode_ms)
        try:
            for step in range(settings.max_tokens):
                if self._cancel_requested():
                    finish = "cancelled"
                    break
                logits, draft = feed.logits()
                forced = msg.forced_tokens[step] if step < len(msg.forced_tokens) else None
                sample_ms = 0.0  # a captured step carries its own (in `fields`)
                if msg.capture or forced is not None:
                    token, fields = sampler.sample_captured(logits, forced)
                else:
                    t0 = time.perf_counter()
                    token, fields = sampler.sample_fast(logits), None
                    sample_ms = (time.perf_counter() - t0) * 1000
                n_generated += 1
                if step == 0:
                    first_token_at = time.perf_counter()
                eog = session.is_end_of_generation(token) and not settings.ignore_eos
                text = "" if eog else utf8.decode(session.piece_bytes(token))
                if fields is not None:
                    pieces = session.display_pieces(fields["stages"], token)
                    if draft >= 0:
                        pieces[draft] = session.display_piece(draft)
                    record = StepRecord(
                        step=step, text=text, piece=session.display_piece(token), pieces=pieces,
                        n_vocab=session.n_vocab, position=feed.position,
                        decode_ms=feed.decode_ms, draft_token=draft, **fields,
                    )
                else:
                    record = StepRecord(
                        step=step, token_id=token, text=text, piece=session.display_piece(token),
                        prob=0.0, raw_prob=0.0, raw_rank=0, entropy_raw=0.0, entropy_final=0.0,
                        stages=(), n_vocab=session.n_vocab, position=feed.position,
                        pieces={draft: session.display_piece(draft)} if draft >= 0 else {},
                        draft_token=draft, sample_ms=sample_ms,
                    )
                steps.add(record)
                if eog:
                    finish = "stop"
                    break
                if stops.feed(text):
                    finish = "stop"
                    break
                if feed.position + 1 >= session.n_ctx:
                    finish = "context"
                    break
                # A draft may propose up to the last step, never a token "continue with" forces.
                feed.advance(token, 0 if step + 1 < len(msg.forced_tokens)
                             else settings.max_tokens - 1 - step)
        finally:
            steps.flush()  # before Done, or before the error an exception becomes
            drafted = feed.finish()
        ended = time.perf_counter()
        # Tokens per prompt piece (the X-ray's parts), counted after the reply so that neither
        # the first token nor prompt_ms waits for it.
        piece_tokens = () if msg.prompt_tokens or msg.images else piece_counts(
            session, msg.prompt, msg.add_bos, prompt)
        gen_s = max(ended - first_token_at, 1e-9) if first_token_at else 0.0
        done = GenerationDone(
            finish_reason=finish,
            text=stops.text(utf8.decode(b"", final=True)),
            usage=Usage(len(prompt), n_generated, reused, piece_tokens),
            timings=Timings(
                prompt_ms=(prompt_done - started) * 1000,
                first_token_ms=((first_token_at or ended) - started) * 1000,
                generate_ms=gen_s * 1000,
                tokens_per_second=(n_generated - 1) / gen_s if n_generated > 1 else 0.0,
            ),
            stop_string=stops.matched,
            draft=drafted,
        )
        self.send(P.Done(msg.request_id, done, tuple(prompt)))

    def _waiting(self) -> bool:
        """Whether a message waits on the pipe. Asked between every two tokens: one reused
        poll object where the platform has them (Connection.poll builds a selector each time,
        a cost the decode's cold caches multiply), the Connection's own check elsewhere."""
        if self._poller is None:
            if not hasattr(select, "poll"):
                return self.conn.poll()
            self._poller = select.poll()
            self._poller.register(self.conn.fileno(), select.POLLIN)
        return bool(self._poller.poll(0))

    def _cancel_requested(self) -> bool:
        cancelled = False
        while self._waiting():
            msg = self.conn.recv()
            if isinstance(msg, P.CancelRequest):
                cancelled = True
            elif isinstance(msg, P.ShutdownRequest):
                self.pending.append(msg)
                cancelled = True
            else:
                self.pending.append(msg)  # answered after this generation
        return cancelled

    # --- replay ---

    def replay(self, msg: P.ReplayRequest) -> None:
        from desktop.core.steps import StepRecord
        from desktop.engine.session import ContextOverflow

        session = self._require(msg.request_id)
        if session is None:
            return
        context = list(msg.context_tokens)
        started = time.perf_counter()
        try:
            session.prepare(context)
        except ContextOverflow as exc:
            self.send(P.EngineError(msg.request_id, "context_overflow", str(exc)))
            return
        except ImageError as exc:
            self.send(P.EngineError(msg.request_id, "bad_request", str(exc)))
            return
        decode_ms = (time.perf_counter() - started) * 1000
        sampler = _sampler(msg.request_id, msg.settings, session, self.send)
        if sampler is None:
            return
        try:
            sampler.accept([t for t in last_n(context, msg.settings, session.n_ctx) if t >= 0])
            sampler.accept_output(context[msg.n_prompt:])  # the grammar's place in the reply
            token, fields = sampler.sample_captured(session.logits(), forced=msg.token_id)
        finally:
            sampler.close()
        pieces = session.display_pieces(fields["stages"], token)
        record = StepRecord(
            step=msg.step, text="", piece=session.display_piece(token), pieces=pieces,
            n_vocab=session.n_vocab, position=len(context), decode_ms=decode_ms,
            replayed=True, **fields,
        )
        self.send(P.Replayed(msg.request_id, record))


def is_transformers_path(path: str) -> bool:
    """A transformers model folder, or its config.json or a .safetensors shard inside one."""
    if os.path.isdir(path):
        return True
    name = os.path.basename(path)
    return name == "config.json" or name.endswith(".safetensors")


def last_n(tokens: list[int], settings: SamplerSettings, n_ctx: int) -> list[int]:
    """The past tokens the penalty and DRY samplers must see: the longer of their windows
    (-1 = whole context); none when both are off."""
    windows = [n_ctx if n < 0 else int(n) for n, on in (
        (settings.repeat_last_n, settings.is_on("penalties")),
        (settings.dry_penalty_last_n, settings.is_on("dry"))) if on]
    window = max(windows, default=0)
    return tokens[-window:] if window > 0 else []


def _sampler(request_id: int, settings: SamplerSettings, session: TokenSession,
             send: Callable[[P.EngineEvent], None]) -> StepSampler | None:
    """The chain for one generation, or None after telling the host why it cannot be built."""
    from desktop.engine.step_sampler import StepSampler

    try:
        # DRY needs llama.cpp's vocabulary for its sequence breakers; other backends have none.
        return StepSampler(settings, session.n_vocab, session.n_ctx,
                           getattr(session, "vocab", None),
                           dry_cache=getattr(session, "dry_templates", None),
                           prefix_trees=getattr(session, "prefix_trees", None))
    except SettingsError as exc:
        send(P.EngineError(request_id, "bad_request", str(exc)))
        return None
