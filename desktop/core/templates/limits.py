"""Limits for rendering untrusted chat templates: a per-render budget and the guards spending it.

`templates.sandbox` renders; this module holds what makes a render stoppable from the inside: a
`Budget` (deadline, written characters, value sizes, taint memo) reached through a thread-local,
the checks run before operations that could allocate a lot in one C call, and `Instrument`, which
rewrites a parsed template so every `{% for %}` iteration and every list/dict literal passes a
guard. No jinja code runs unguarded for long: the clock is read every 64 ticks.

Runs on the rendering thread; the state is thread-local, so threads may render concurrently.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.nodes as jn
from jinja2.runtime import Undefined
from jinja2.utils import Namespace, pass_context
from jinja2.visitor import NodeTransformer

from desktop.core.templates.taint import is_tainted, untrusted

MIB = 1024 * 1024
MAX_INT_ARG = 1_000_000  # widths, counts and indexes beyond this are never legitimate here
MAX_INT_BITS = 8192
TICK_EVERY = 64  # ticks between clock reads (every tick is bounded, so 64 are too)
LOOP_FILTER = "openlid_loop_guard"
VALUE_FILTER = "openlid_value_guard"
_WIDTH_RE = re.compile(  # a printf or format() width/precision of 7+ digits: megabytes of pad
    r"%(?:\([^)]*\))?[-#0 +]*(?:\d{7,}|\d*\.\d{7,})|\{[^{}]*?\d{7,}[^{}]*\}")


class TemplateError(Exception):
    """A template could not be compiled or rendered; `str()` is a message for the user.

    kind: "syntax", "raised" (the template called raise_exception), "security", "timeout",
    "too_large", "cancelled", "empty" or "runtime". line: 1-based template line, when known.
    """

    def __init__(self, message: str, *, kind: str = "runtime", line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class RaisedByTemplate(jinja2.TemplateError):
    """What `raise_exception` raises: a jinja TemplateError, as in transformers."""


@dataclass(frozen=True)
class RenderLimits:
    seconds: float = 1.0
    output_chars: int = 4 * MIB


def too_large(what: str) -> TemplateError:
    return TemplateError(f"template output too large ({what})", kind="too_large")


def value_too_large() -> TemplateError:
    return too_large("a value would exceed the size limit")


class Budget:
    """Per-render counters; reached through a thread-local by the environment's hooks."""

    def __init__(self, limits: RenderLimits, cancel: threading.Event | None) -> None:
        self.limits = limits
        self.cancel = cancel
        self.deadline = time.perf_counter() + limits.seconds
        self.ops = 0
        self.next_check = TICK_EVERY
        self.emitted = 0
        self.max_value = 2 * limits.output_chars
        self.max_emitted = 4 * limits.output_chars
        # id -> (object, result); the object is kept so its id cannot be reused meanwhile.
        # Lists and dicts cannot change inside the immutable sandbox, so the memo stays valid.
        self._weights: dict[int, tuple[object, int]] = {}
        self._taints: dict[int, tuple[object, bool]] = {}

    def tick(self) -> None:
        self.ops += 1
        if self.ops >= self.next_check:
            self.next_check = self.ops + TICK_EVERY
            if time.perf_counter() > self.deadline:
                raise TemplateError(
                    f"template took too long (over {self.limits.seconds:g} s); "
                    "it may loop forever",
                    kind="timeout",
                )
            if self.cancel is not None and self.cancel.is_set():
                raise TemplateError("rendering was cancelled", kind="cancelled")

    def emit(self, chars: int) -> None:
        self.emitted += chars
        if self.emitted > self.max_emitted:
            raise too_large(f"over {self.max_emitted // MIB} MiB written")

    def weight(self, value: Any) -> int:
        """Logical size of a value: characters plus container entries, shared parts counted
        each time they appear (that is what printing or comparing it costs)."""
        if isinstance(value, str):
            return len(value) + 1
        if not isinstance(value, (list, tuple, dict, set, frozenset, Namespace)):
            return 1
        hit = self._weights.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        items: Iterable[Any]
        if isinstance(value, Namespace):
            items = _namespace_values(value)
        elif isinstance(value, dict):
            items = (*value.keys(), *value.values())
        else:
            items = value
        total = 1
        for item in items:
            total += self.weight(item)
            if total > self.max_value:
                raise value_too_large()
        if not isinstance(value, Namespace):  # namespaces are mutable: never memoised
            self._weights[id(value)] = (value, total)
        return total

    def check(self, value: Any) -> None:
        if isinstance(value, str):
            if len(value) > self.max_value:
                raise value_too_large()
        elif isinstance(value, (list, tuple, dict, Namespace)):
            self.weight(value)

    def mark_tainted(self, value: Any) -> None:
        self._taints[id(value)] = (value, True)

    def tainted(self, value: Any) -> bool:
        if isinstance(value, str):
            return is_tainted(value)
        hit = self._taints.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        if not isinstance(value, (list, tuple, dict, Namespace)):
            return False
        if isinstance(value, Namespace):
            return any(self.tainted(v) for v in _namespace_values(value))
        items = (*value.keys(), *value.values()) if isinstance(value, dict) else value
        result = any(self.tainted(v) for v in items)
        self._taints[id(value)] = (value, result)
        return result


def _namespace_values(ns: Namespace) -> list[Any]:
    attrs = getattr(ns, "_Namespace__attrs", {})
    return list(attrs.values()) if isinstance(attrs, dict) else []


STATE = threading.local()


def active_budget() -> Budget | None:
    return getattr(STATE, "budget", None)


def check_ints(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARG:
            raise TemplateError(f"template argument too large ({arg})", kind="too_large")


def check_widths(fmt: Any) -> None:
    if isinstance(fmt, str) and _WIDTH_RE.search(fmt):
        raise TemplateError("template format width too large", kind="too_large")


def text_of(value: Any, b: Budget | None) -> str:
    """str(value) for output, keeping taint: a container holding message text prints it."""
    if isinstance(value, str):
        return value
    if b is not None:
        b.weight(value)  # bounds the cost of str() below
    text = str(value)
    return untrusted(text) if b is not None and text and b.tainted(value) else text


def taint_result(result: Any, inputs_tainted: bool, budget: Budget, *, exact: bool = False
                 ) -> Any:
    """The result of a call, filter or operator, given whether any input was tainted.

    `exact` callables (TaintedStr's own methods, template macros, a few jinja filters that only
    use those) already carry exact spans. Any other code may have mixed tainted and plain
    pieces with operations that drop spans (jinja's indent filter joins lines with a plain
    str.join), so its string results are marked untrusted as a whole.
    """
    if not inputs_tainted or exact:
        return result
    if isinstance(result, str):
        return untrusted(result) if result else result
    if isinstance(result, (list, tuple)):
        items = [untrusted(x) if isinstance(x, str) and x else x for x in result]
        return items if isinstance(result, list) else tuple(items)
    if not isinstance(result, (int, float, type(None), Undefined)):
        # e.g. bytes from .encode(): remember it, so printing it later is untrusted too
        budget.mark_tainted(result)
    return result


def estimate_str_call(owner: str, name: str, args: tuple[Any, ...], b: Budget) -> None:
    """Refuse, before they run, str methods whose result would be huge."""
    size = 0
    if name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        old, new = args[0], args[1]
        hits = owner.count(old) if old else len(owner) + 1
        size = len(owner) + hits * max(0, len(new) - len(old))
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        size = len(owner) + owner.count("\t") * max(tab, 0)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        size = len(owner) * max(longest, 1)
    if size > b.max_value:
        raise value_too_large()


class GuardedIterable:
    """Wraps every `{% for %}` iterable: one tick per iteration, plus the static text the loop
    body writes each time round (which no other hook sees)."""

    def __init__(self, iterable: Any, budget: Budget, static_chars: int) -> None:
        self._iterable = iterable
        self._budget = budget
        self._static = static_chars

    def __iter__(self) -> Iterator[Any]:
        b, static = self._budget, self._static
        for item in self._iterable:
            b.tick()
            if static:
                b.emit(static)
            yield item

    def __len__(self) -> int:
        return len(self._iterable)


@pass_context
def loop_guard(context: Any, iterable: Any, static_chars: int) -> Any:
    b = active_budget()
    if b is None:
        raise jn.Impossible()  # never constant-fold: only guard at render time
    return GuardedIterable(iterable, b, static_chars)


@pass_context
def value_guard(context: Any, value: Any) -> Any:
    b = active_budget()
    if b is None:
        raise jn.Impossible()
    b.tick()
    b.weight(value)  # a list literal [x, x] doubles the logical size: catch it here
    return value


def static_chars(body: list[jn.Node]) -> int:
    total = 0
    stack: list[jn.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, jn.For):
            continue  # a nested loop counts its own iterations
        if isinstance(node, jn.Output):
            for child in node.nodes:
                if isinstance(child, jn.TemplateData):
                    total += len(child.data)
                else:
                    # not a constant: finalize counts it at run time instead
                    with contextlib.suppress(Exception):
                        total += len(str(child.as_const()))
        stack.extend(node.iter_child_nodes())
    return total


class Instrument(NodeTransformer):
    """Rewrites the parsed template so loops and container literals pass through guards."""

    def visit_For(self, node: jn.For) -> jn.Node:
        visited = self.generic_visit(node)
        assert isinstance(visited, jn.For)
        node = visited
        weight = static_chars(node.body)
        node.iter = jn.Filter(node.iter, LOOP_FILTER, [jn.Const(weight)], [], None, None,
                              lineno=node.lineno)
        return node

    def _guard(self, node: jn.Expr) -> jn.Node:
        visited = self.generic_visit(node)
        return jn.Filter(visited, VALUE_FILTER, [], [], None, None, lineno=node.lineno)

    visit_List = _guard
    visit_Dict = _guard

    def visit_Tuple(self, node: jn.Tuple) -> jn.Node:
        return self._guard(node) if node.ctx == "load" else self.generic_visit(node)
