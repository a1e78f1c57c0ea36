"""Connections to the user's MCP servers, through the official `mcp` SDK, off the caller's thread.

`McpClients` owns one named thread, "openlid-mcp", running an asyncio loop; it starts on the first
`connect` (nothing runs until the person connects a server) and stops in `close`. Every method is
thread-safe and returns a `concurrent.futures.Future` at once, so the GUI thread never waits on a
server: `connect` starts the server (a stdio command, or a streamable-HTTP endpoint with its
headers), lists its tools and keeps the session open; `call_tool` runs one tool; `disconnect`
ends one session. Each connection lives in one task on that loop (the SDK's sessions must be
entered and left by the same task); `on_change`, if given, is called on the loop's thread with a
server's new `McpServerState` — a Qt caller re-emits it as a queued signal.

Failures come back as `McpError` in words: a command that is not found, a server that exits
before answering (with the last lines it wrote to stderr), one that does not answer within
`start_timeout`, an endpoint that cannot be reached, a tool that fails or takes too long.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, TextIO

from desktop.core.tools.calls import ToolSpec
from desktop.core.tools.mcp_config import McpServerConfig

__all__ = ["McpClients", "McpError", "McpServerState", "McpTool", "McpToolResult"]

DISCONNECTED, CONNECTING, CONNECTED, FAILED = "disconnected", "connecting", "connected", "failed"
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_\-]")


class McpError(RuntimeError):
    """An MCP server or tool failed; the message says what happened in words."""


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str  # the server's own name for it
    spec: ToolSpec  # as offered to the model (its name made safe for OpenAI's rule)


@dataclass(frozen=True)
class McpServerState:
    name: str
    status: str = DISCONNECTED
    tools: tuple[McpTool, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class McpToolResult:
    text: str  # what goes back to the model as the tool message
    is_error: bool = False


def _model_name(server: str, tool: str, taken: set[str]) -> str:
    name = _MODEL_NAME.sub("_", tool)[:64] or "tool"
    if name in taken:
        name = _MODEL_NAME.sub("_", f"{server}_{tool}")[:64]
    taken.add(name)
    return name


def result_text(result: Any) -> McpToolResult:
    """A CallToolResult as text for the model: its text blocks, others named."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '')}]")
        elif kind == "resource":
            resource = block.resource
            parts.append(str(getattr(resource, "text", "") or f"[resource: {resource.uri}]"))
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return McpToolResult("\n".join(parts), bool(getattr(result, "is_error", False)))


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, which anyio's task groups raise."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple | list) and inner:
        return [leaf for e in inner for leaf in _leaves(e)]
    return [exc]


def _stderr_tail(errlog: IO[str] | None) -> str:
    if errlog is None:
        return ""
    with contextlib.suppress(OSError, ValueError):
        errlog.flush()
        errlog.seek(0)
        lines = [line.strip() for line in errlog.read()[-4000:].splitlines() if line.strip()]
        return " | ".join(lines[-5:])
    return ""


def _words(exc: BaseException, cfg: McpServerConfig, errlog: IO[str] | None) -> str:
    leaf = next((e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)),
                _leaves(exc)[0])
    said = _stderr_tail(errlog)
    tail = f" It wrote: {said}" if said else ""
    if isinstance(leaf, FileNotFoundError) and cfg.transport == "stdio":
        return f"could not start {cfg.name!r}: the command {cfg.command!r} was not found.{tail}"
    if isinstance(leaf, PermissionError) and cfg.transport == "stdio":
        return f"could not start {cfg.name!r}: {cfg.command!r} may not be run.{tail}"
    text = str(leaf) or type(leaf).__name__
    if "Connection closed" in text:
        return f"{cfg.name!r} stopped before it answered.{tail}"
    if cfg.transport == "http" and type(leaf).__name__ in ("ConnectError", "ConnectTimeout"):
        return f"cannot reach {cfg.name!r} at {cfg.url}: {text}"
    return f"{cfg.name!r} failed: {type(leaf).__name__}: {text}.{tail}"


class McpClients:
    """The MCP sessions of one app (or test): see the module docstring."""

    def __init__(self, *, start_timeout: float = 30.0, call_timeout: float = 120.0,
                 on_change: Callable[[McpServerState], None] | None = None) -> None:
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._on_change = on_change
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._states: dict[str, McpServerState] = {}
        self._sessions: dict[str, Any] = {}  # name -> the SDK's Client (loop thread only)
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # ---- any thread ----

    def state(self, name: str) -> McpServerState:
        with self._lock:
            return self._states.get(name, McpServerState(name))

    def tools(self) -> tuple[McpTool, ...]:
        """The tools of every connected server, each with a name unique among them."""
        with self._lock:
            return tuple(t for s in self._states.values() for t in s.tools)

    def connect(self, cfg: McpServerConfig) -> concurrent.futures.Future[McpServerState]:
        return self._submit(self._connect(cfg))

    def disconnect(self, name: str) -> concurrent.futures.Future[None]:
        return self._submit(self._disconnect(name))

    def call_tool(self, server: str, tool: str,
                  arguments: Mapping[str, Any]) -> concurrent.futures.Future[McpToolResult]:
        return self._submit(self._call(server, tool, dict(arguments)))

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect every server and stop the thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._disconnect_all(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._run_loop, args=(loop,),
                                          name="openlid-mcp", daemon=True)
                self._loop, self._thread = loop, thread
                thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop)

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    # ---- the loop's thread ----

    def _set(self, state: McpServerState) -> McpServerState:
        with self._lock:
            self._states[state.name] = state
        if self._on_change is not None:
            self._on_change(state)
        return state

    def _tools_of(self, cfg: McpServerConfig, listed: list[Any]) -> tuple[McpTool, ...]:
        with self._lock:
            taken = {t.spec.name for name, s in self._states.items() if name != cfg.name
                     for t in s.tools}
        return tuple(
            McpTool(cfg.name, t.name, ToolSpec(_model_name(cfg.name, t.name, taken),
                                               t.description or "", dict(t.input_schema)))
            for t in listed)

    def _target(self, cfg: McpServerConfig, errlog: TextIO | None,
                stack: contextlib.AsyncExitStack) -> Any:
        if cfg.transport == "http":
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = create_mcp_http_client(headers=dict(cfg.headers))
            stack.push_async_callback(http.aclose)
            return streamable_http_client(cfg.url, http_client=http)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=cfg.command, args=list(cfg.args),
                                       env=dict(cfg.env) or None, cwd=cfg.cwd or None)
        assert errlog is not None
        return stdio_client(params, errlog=errlog)

    async def _hold(self, cfg: McpServerConfig, ready: asyncio.Future[tuple[McpTool, ...]],
                    stop: asyncio.Event) -> None:
        """One connection, from start to disconnect, in one task."""
        from mcp import Client

        # The server's stderr, kept to quote when it fails (a real file: the child writes it).
        errlog: TextIO | None = (tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
                  if cfg.transport == "stdio" else None)
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(self._target(cfg, errlog, stack)))
                listed: list[Any] = []
                cursor = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    listed += page.tools
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self._sessions[cfg.name] = client
                ready.set_result(self._tools_of(cfg, listed))
                await stop.wait()
        except BaseException as exc:  # every failure, cancellation included, becomes words
            words = _words(exc, cfg, errlog)
            if not ready.done():
                ready.set_exception(McpError(words))
            elif not stop.is_set():  # the server went away while connected
                self._set(McpServerState(cfg.name, FAILED, (), words))
        finally:
            self._sessions.pop(cfg.name, None)
            if errlog is not None:
                errlog.close()

    async def _connect(self, cfg: McpServerConfig) -> McpServerState:
        await self._disconnect(cfg.name)
        self._set(McpServerState(cfg.name, CONNECTING))
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[tuple[McpTool, ...]] = loop.create_future()
        stop = asyncio.Event()
        self._stops[cfg.name] = stop
        task = loop.create_task(self._hold(cfg, ready, stop), name=f"mcp:{cfg.name}")
        self._tasks[cfg.name] = task
        try:
            tools = await asyncio.wait_for(asyncio.shield(ready), self._start_timeout)
        except asyncio.TimeoutError:
            stop.set()
            ready.cancel()  # nobody waits for it now
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            error = (f"{cfg.name!r} did not answer within {self._start_timeout:g} s "
                     f"({cfg.describe()})")
            self._set(McpServerState(cfg.name, FAILED, (), error))
            raise McpError(error) from None
        except McpError as exc:
            self._set(McpServerState(cfg.name, FAILED, (), str(exc)))
            raise
        return self._set(McpServerState(cfg.name, CONNECTED, tools))

    async def _disconnect(self, name: str) -> None:
        stop, task = self._stops.pop(name, None), self._tasks.pop(name, None)
        if stop is not None:
            stop.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            self._set(McpServerState(name, DISCONNECTED))

    async def _disconnect_all(self) -> None:
        for name in list(self._tasks):
            await self._disconnect(name)

    async def _call(self, server: str, tool: str, arguments: dict[str, Any]) -> McpToolResult:
        client = self._sessions.get(server)
        if client is None:
            raise McpError(f"{server!r} is not connected; connect it in the MCP panel first")
        try:
            result = await asyncio.wait_for(client.call_tool(tool, arguments),
                                            self._call_timeout)
        except asyncio.TimeoutError:
            raise McpError(f"{tool!r} on {server!r} did not finish within "
                           f"{self._call_timeout:g} s") from None
        except Exception as exc:
            leaf = _leaves(exc)[0]
            raise McpError(f"{tool!r} on {server!r} failed: {leaf}") from None
        return result_text(result)
