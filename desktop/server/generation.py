"""One generation request answered over HTTP: `chat_prompt` renders a chat request through the
model's template, then `GenerationReply` turns the engine's StepRecords into a whole OpenAI
response or a stream of server-sent events, and `Exchange` into the request's log entry.

`desktop.server.http` routes and checks a request, then hands it here with its connection. Runs
on that request's handler thread (one per connection, ThreadingHTTPServer), which waits for the
engine through `ServerApp.engine_turn()` and writes chunks as the engine's StepRecords arrive. An
engine error before the first token raises before any header is sent (so the caller answers it
as an error object); one mid-stream is written into the stream, as OpenAI does. A request with
Openlid's `openlid_steps` also gets every StepRecord as a JSON row (see
`desktop.core.openai.responses`).

While it waits and while the engine generates, the request watches its connection (`gone`, a
poll of the socket for EOF) and its time limit (`ServerApp.max_request_seconds`): a client that
left cancels the generation at once, even a non-streaming one that would only notice when writing
the answer, and a generation that reaches the limit is stopped and answered with what it has
(finish_reason "length"; the log says why).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from desktop import __version__
from desktop.core.generation import resolve_seed
from desktop.core.model_info import ModelInfo
from desktop.core.openai import responses as S
from desktop.core.openai.reasoning import ReasoningRelease, reasoning_of
from desktop.core.openai.requests import ApiError, ApiRequest
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.core.tools.formats import HERMES, ToolFormat, parse_tool_calls
from desktop.core.tools.stream import CallHold
from desktop.engine import protocol as P
from desktop.server.app import ServerApp
from desktop.server.config import ClientGone
from desktop.server.log_entry import RequestLogEntry

__all__ = ["FINGERPRINT", "Exchange", "GenerationReply", "chat_prompt"]

FINGERPRINT = f"openlid-{__version__}"  # the responses' "system_fingerprint"


def chat_prompt(info: ModelInfo, request: ApiRequest) -> tuple[P.PromptPieces, SamplerSettings]:
    """Render a chat request through the model's template: the engine's prompt pieces, and the
    request's settings with the template's own stop strings added (and, when a tool call must
    come, the grammar that holds the reply to one: `core.tools.grammar`)."""
    from desktop.core.templates.prompt import TemplateError, choose_template
    from desktop.core.tools.grammar import tool_call_grammar
    from desktop.core.tools.prompt import render_with_tools

    template = choose_template(info.chat_templates, info.architecture, info.name)
    tools = request.tools if request.wants_tools else ()
    try:
        shown = render_with_tools(
            template, request.chat_messages(), tools,
            bos_token=info.bos.text if info.bos else None,
            eos_token=info.eos.text if info.eos else None,
        )
    except TemplateError as exc:
        raise ApiError(
            f"The model's chat template ({template.name}) cannot lay out these messages: {exc}",
            param="messages", code="template_error",
        ) from exc
    settings = request.settings
    grammar = tool_call_grammar(shown.format, tools, request.tool_choice,
                                request.parallel_tool_calls) if tools else ""
    if grammar:
        if settings.structured_output != "none":
            raise ApiError(
                "A tool call that must come is already held to a grammar: give 'tool_choice' "
                "\"required\" (or a function) or a structured output, not both.",
                param="tool_choice", code="invalid_value",
            )
        settings = settings.replace(structured_output="gbnf", grammar=grammar)
    stops = tuple(dict.fromkeys(settings.stop + template.stop))
    pieces = tuple((segment.text, segment.trusted) for segment in shown.rendered.segments)
    return pieces, settings.replace(stop=stops)


def tool_format(info: ModelInfo | None) -> ToolFormat:
    """The convention the model's template asks tool calls in (see `core.tools.prompt`)."""
    from desktop.core.templates.prompt import choose_template
    from desktop.core.tools.prompt import tool_format_of

    if info is None:
        return HERMES
    return tool_format_of(choose_template(info.chat_templates, info.architecture, info.name))


@dataclass
class Exchange:
    """What one request did, filled in as it goes; becomes a RequestLogEntry at the end."""

    request_id: int
    method: str
    path: str
    client: str
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.perf_counter)
    status: int = 0
    body: str = ""
    prompt: str = ""
    pieces: tuple[tuple[str, bool], ...] = ()
    steps: list[StepRecord] = field(default_factory=list)
    done: GenerationDone | None = None
    stream: bool = False
    error: str = ""
    settings: SamplerSettings | None = None  # what the engine sampled with (seed resolved)
    model: str = ""  # the model id that answered

    def to_entry(self) -> RequestLogEntry:
        """The finished request, for the app's request log."""
        return RequestLogEntry(
            request_id=self.request_id, started=self.started, method=self.method,
            path=self.path, client=self.client, status=self.status,
            duration_ms=(time.perf_counter() - self.clock) * 1000, body=self.body,
            prompt=self.prompt, prompt_pieces=self.pieces, steps=tuple(self.steps),
            done=self.done, stream=self.stream, error=self.error,
            settings=self.settings, model=self.model,
        )


Reply = Callable[[Exchange, dict[str, Any]], None]


class GenerationReply:
    """Answers one generation request on its connection: whole (`_collect`) or streamed."""

    def __init__(self, handler: BaseHTTPRequestHandler, app: ServerApp, ex: Exchange,
                 reply: Reply, gone: Callable[[], bool]) -> None:
        self.handler, self.app, self.ex = handler, app, ex
        # The handler's JSON reply: it also decides keep-alive and HEAD, as for other routes.
        self._reply = reply
        self._gone = gone  # True once the client has closed its connection
        self._cut = False  # the time limit stopped the generation

    def run(self, request: ApiRequest, settings: SamplerSettings, text_offset: int) -> None:
        """Wait for the engine, generate, and write the answer (raises ApiError before any
        header when the engine refuses the request, ClientGone when the client leaves before
        its answer is written)."""
        ex, app = self.ex, self.app
        with app.engine_turn(self._gone) as engine:
            deadline = time.monotonic() + app.max_request_seconds

            def watch() -> None:
                if self._gone():
                    raise ClientGone("the client disconnected")
                if not self._cut and time.monotonic() >= deadline:
                    self._cut = True
                    ex.error = (f"stopped at the server's time limit "
                                f"({app.max_request_seconds:g} s per request)")
                    engine.stop_early()

            # A "random" seed is drawn here, so the request log names the seed really used.
            settings = resolve_seed(settings)
            ex.settings, ex.model = settings, app.model_id
            events = engine.generate(ex.pieces, request.prompt_tokens, settings, watch=watch)
            with contextlib.closing(events):
                first = next(events)  # an engine error raises here, before any header
                items = itertools.chain([first], events)
                ids = _Ids(request.kind, app.model_id)
                if request.stream:
                    self._stream(ex, request, settings, items, ids, text_offset)
                else:
                    self._collect(ex, request, settings, items, ids, text_offset)

    def _done(self, ex: Exchange, item: GenerationDone) -> GenerationDone:
        """The engine's last word; a generation the time limit stopped ends for "length"."""
        if self._cut and item.finish_reason == "cancelled":
            item = dataclasses.replace(item, finish_reason="length")
        ex.done = item
        return item

    def _take(self, ex: Exchange, item: StepRecord) -> None:
        ex.steps.append(item)
        self.app.report_step(ex.request_id, item)

    def _collect(self, ex: Exchange, request: ApiRequest, settings: SamplerSettings,
                 items: Iterator[StepRecord | GenerationDone], ids: _Ids,
                 text_offset: int) -> None:
        release = S.TextRelease(settings.stop)
        tokens: list[tuple[int, StepRecord]] = []
        for item in items:
            if isinstance(item, StepRecord):
                self._take(ex, item)
                tokens += release.feed(item)[1]
            else:
                tokens += release.finish(self._done(ex, item))[1]
        if ex.done is None:
            raise ApiError("The engine ended without finishing.", status=500,
                           type_="server_error")
        calls: dict[str, Any] = {}
        if request.wants_tools:
            parsed = parse_tool_calls(ex.done.text, tool_format(self.app.info))
            calls = dict(content=parsed.content, tool_calls=parsed.calls)
        common: dict[str, Any] = dict(
            response_id=ids.response_id, created=ids.created, model=ids.model, done=ex.done,
            tokens=tokens, logprobs=request.logprobs, top=request.top_logprobs,
            fingerprint=FINGERPRINT,
            steps=[S.step_row(r) for r in ex.steps] if request.openlid_steps else None,
        )
        if request.kind == "chat":
            self._reply(ex, S.chat_response(**common, **calls,
                                            reasoning=reasoning_of(self.app.info, ex.pieces)))
        else:
            self._reply(ex, S.completion_response(**common, text_offset=text_offset))

    def _stream(self, ex: Exchange, request: ApiRequest, settings: SamplerSettings,
                items: Iterator[StepRecord | GenerationDone], ids: _Ids,
                text_offset: int) -> None:
        chat = request.kind == "chat"
        usage = request.include_usage
        base: dict[str, Any] = dict(response_id=ids.response_id, created=ids.created,
                                    model=ids.model, fingerprint=FINGERPRINT,
                                    include_usage=usage)

        # A thinking block goes out as `reasoning_content`, the rest as `content`.
        think = ReasoningRelease(reasoning_of(self.app.info, ex.pieces) if chat else None)

        def chunk(text: str, tokens: list[tuple[int, StepRecord]] | None,
                  finish: str | None = None, step: StepRecord | None = None) -> dict[str, Any]:
            logged = tokens if request.logprobs and finish is None else None
            row = S.step_row(step) if step is not None else None
            if chat:
                delta = {} if finish else think.delta(text)
                return S.chat_chunk(**base, delta=delta, tokens=logged,
                                    top=request.top_logprobs, finish=finish, step=row)
            return S.completion_chunk(**base, text=text, tokens=logged, top=request.top_logprobs,
                                      text_offset=text_offset, finish=finish, step=row)

        self._start_stream()
        ex.status = 200
        if chat:
            self._event(S.chat_chunk(**base, delta={"role": "assistant", "content": ""},
                                     tokens=[] if request.logprobs else None))
        release = S.TextRelease(settings.stop)
        # With tools offered, text that may be a call is held back (core.tools.stream).
        hold = CallHold(tool_format(self.app.info)) if chat and request.wants_tools else None
        try:
            for item in items:
                # openlid_steps: one chunk per generated token, carrying its row, even while
                # its text is held back (a possible stop string) or is never shown (EOS).
                step = None
                if isinstance(item, StepRecord):
                    self._take(ex, item)
                    text, tokens = release.feed(item)
                    step = item if request.openlid_steps else None
                else:
                    text, tokens = release.finish(self._done(ex, item))
                if hold is not None:
                    text = hold.feed(text)
                if text or tokens or step is not None:
                    self._event(chunk(text, tokens, step=step))
        except ApiError as exc:  # the engine failed mid-stream: say so in the stream, as OpenAI
            ex.error = exc.message
            self._event(exc.to_json())
        if ex.done is not None:
            finish = S.finish_reason(ex.done)
            if hold is not None:
                rest, calls = hold.finish(ex.done.text)
                if rest:
                    self._event(chunk(rest, None))
                # As llama-server: each call whole in one delta, after the content.
                for index, call in enumerate(calls):
                    self._event(S.chat_chunk(**base, delta=S.tool_call_delta(index, call)))
                finish = "tool_calls" if calls else finish
            if tail := think.finish():
                self._event(S.chat_chunk(**base, delta=tail))
            self._event(chunk("", None, finish))
            if usage:
                obj = "chat.completion.chunk" if chat else "text_completion"
                self._event(S.usage_chunk(response_id=ids.response_id, created=ids.created,
                                          model=ids.model, obj=obj, usage=ex.done.usage,
                                          fingerprint=FINGERPRINT))
        self._chunk(b"data: [DONE]\n\n")
        self.handler.wfile.write(b"0\r\n\r\n")

    def _start_stream(self) -> None:
        self.handler.send_response(200)
        self.handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.handler.send_header("Cache-Control", "no-cache")
        self.handler.send_header("Transfer-Encoding", "chunked")
        self.handler.end_headers()

    def _event(self, obj: dict[str, Any]) -> None:
        self._chunk(b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


@dataclass(frozen=True)
class _Ids:
    kind: str
    model: str
    response_id: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        prefix = "chatcmpl" if self.kind == "chat" else "cmpl"
        object.__setattr__(self, "response_id", f"{prefix}-{uuid.uuid4().hex[:24]}")
        object.__setattr__(self, "created", int(time.time()))
