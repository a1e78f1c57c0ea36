"""The jinja2 environment that chat templates render in: the sandbox, guarded at every step.

jinja2's `ImmutableSandboxedEnvironment` blocks `__class__`-style attribute walks and changes to
inputs (and here says so loudly instead of printing ""); this subclass adds what it lacks. Every
attribute and item access, call, intercepted operator (`+ * ** %`) and filter ticks the active
`Budget` (see `templates.limits`), operations that could build a huge value in one C call (`*`,
`replace`, `join`, padding and `%`/`format` widths, big integers, `tojson`) are sized before they
run, and string results keep or widen the spans of message text (`TaintedStr`, see
`templates.taint`). The options, globals and filters match transformers' chat-template
environment (trim/lstrip blocks, loop controls, `{% generation %}`, `tojson` without HTML
escaping, `raise_exception`, `strftime_now`).

`templates.sandbox` builds one environment at import and compiles and renders with it. Whatever
thread renders spends its own thread-local budget; outside a render (compile time) the guards
refuse constant folding rather than run unbudgeted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.filters
import jinja2.nodes as jn
import jinja2.runtime
from jinja2.runtime import LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, is_internal_attribute

from desktop.core.templates.limits import (
    LOOP_FILTER,
    MAX_INT_BITS,
    VALUE_FILTER,
    Budget,
    Instrument,
    RaisedByTemplate,
    TemplateError,
    active_budget,
    check_ints,
    check_widths,
    estimate_str_call,
    loop_guard,
    taint_result,
    text_of,
    value_guard,
    value_too_large,
)
from desktop.core.templates.taint import TaintedStr, taint_join

__all__ = ["SandboxEnvironment", "make_environment"]

# Filters no chat template uses whose cost cannot be bounded from their arguments.
_DROPPED_FILTERS = ("urlize", "wordwrap", "xmlattr", "pprint")
# Filters whose results carry exact spans: they return (parts of) their inputs or, given a
# TaintedStr, only slice it or call its own methods. Any other filter's string result is
# untrusted as a whole when an input was.
_EXACT_FILTERS = frozenset({"join", "first", "last", "min", "max", "reverse", "list",
                            "default", "d"})
_EXACT_ON_STR_FILTERS = frozenset({"trim", "replace", "upper", "lower", "capitalize"})


class _GenerationTag(jinja2.ext.Extension):
    """transformers' `{% generation %}` marks assistant text for training; here it is a no-op
    so templates that use it still parse."""

    tags = {"generation"}  # noqa: RUF012 - jinja reads this class attribute

    def parse(self, parser: Any) -> list[jn.Node]:
        next(parser.stream)
        body: list[jn.Node] = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return body


def _finalize(value: Any) -> Any:
    b = active_budget()
    if b is None or isinstance(value, Undefined) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    text = text_of(value, b)
    b.emit(len(text))
    return text


def _concat(items: Iterable[Any]) -> str:
    b = active_budget()
    texts = [text_of(x, b) for x in items]
    if b is not None and sum(map(len, texts)) > b.max_value:
        raise value_too_large()  # `~` in a loop would otherwise double a string unchecked
    return taint_join("", texts)


def _raise_exception(message: str) -> None:
    raise RaisedByTemplate(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """transformers' tojson (no HTML escaping), written out chunk by chunk within the budget."""
    b = active_budget()
    if isinstance(indent, int) and indent > 64:
        raise TemplateError("template argument too large (indent)", kind="too_large")
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, indent=indent,
                               separators=separators, sort_keys=sort_keys)
    parts: list[str] = []
    size = 0
    for chunk in encoder.iterencode(value):
        parts.append(chunk)
        size += len(chunk)
        if b is not None:
            b.tick()
            if size > b.max_value:
                raise value_too_large()
    return "".join(parts)


@jinja2.pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    """jinja's join, keeping which pieces are message text."""
    b = active_budget()
    if attribute is not None:
        getter = jinja2.filters.make_attrgetter(eval_ctx.environment, attribute)
        value = map(getter, value)
    items = [text_of(x, b) for x in value]
    if b is not None and sum(map(len, items)) + len(d) * len(items) > b.max_value:
        raise value_too_large()
    return taint_join(str(d), items)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # also copies jinja's pass_context/pass_environment marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        b = active_budget()
        if b is None:
            raise jn.Impossible()  # compile time: no constant folding through our filters
        b.tick()
        check_ints((*args, *kwargs.values()))
        values = [a for a in args if isinstance(a, str)]
        if name == "format" and values:
            check_widths(values[0])
        elif name == "replace" and len(values) >= 3:
            estimate_str_call(values[0], "replace", (values[1], values[2]), b)
        elif name == "indent" and values:
            width = args[1] if len(args) > 1 else kwargs.get("width", 4)
            pad = len(width) if isinstance(width, str) else int(width)
            if len(values[0]) + (values[0].count("\n") + 1) * pad > b.max_value:
                raise value_too_large()
        result = func(*args, **kwargs)
        if isinstance(result, Iterator):
            return _ticking(result, b)
        # Containers from filters hold the very items they were given (already tracked), so
        # only new scalar results need widening; a list of new strings would over-taint roles.
        if not isinstance(result, (list, tuple, dict)):
            tainted = any(b.tainted(a) for a in (*args, *kwargs.values()))
            value = next((a for a in args if not isinstance(a, _CONTEXTS)), None)
            exact = name in _EXACT_FILTERS or (
                name in _EXACT_ON_STR_FILTERS and isinstance(value, TaintedStr))
            result = taint_result(result, tainted, b, exact=exact)
        b.check(result)
        return result

    return guarded


_CONTEXTS = (jinja2.runtime.Context, jinja2.nodes.EvalContext, jinja2.Environment)


def _ticking(items: Iterator[Any], b: Budget) -> Iterator[Any]:
    for item in items:
        b.tick()
        yield item


class _Template(jinja2.Template):
    @classmethod
    def _from_namespace(cls, environment: jinja2.Environment, namespace: Any,
                        globals: Any) -> Any:
        # `~` compiles to calls of these module-level helpers: route them through taint-keeping
        # joins. Buffers (macros, set blocks) use environment.concat, overridden below.
        namespace["str_join"] = _concat
        namespace["markup_join"] = _concat
        return super()._from_namespace(environment, namespace, globals)


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with every access, call and operator ticking the render's budget."""

    template_class = _Template
    intercepted_binops = frozenset({"+", "*", "**", "%"})
    concat = staticmethod(_concat)

    def _parse(self, source: str, name: str | None, filename: str | None) -> jn.Template:
        tree = super()._parse(source, name, filename)
        result = Instrument().visit(tree)
        assert isinstance(result, jn.Template)
        return result

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # The stock sandbox returns an Undefined that prints as "": fail loudly instead.
        kind = type(obj).__name__
        if attribute.startswith("_") or is_internal_attribute(obj, attribute):
            message = (f"template tried to reach Python internals ({attribute!r} of a {kind!r} "
                       "object); nothing was run")
        else:
            message = (f"template tried to change a {kind!r} with {attribute!r}; templates "
                       "cannot modify their inputs")
        raise TemplateError(message, kind="security")

    def getattr(self, obj: Any, attribute: str) -> Any:
        b = active_budget()
        if b is not None:
            b.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        b = active_budget()
        if b is not None:
            b.tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        b = active_budget()
        if b is None:
            return super().call_binop(context, operator, left, right)
        b.tick()
        sized = (str, list, tuple)
        if operator == "+" and isinstance(left, sized) and isinstance(right, sized):
            if b.weight(left) + b.weight(right) > b.max_value:
                raise value_too_large()
        elif operator in ("*", "**") and _is_int(left) and _is_int(right):
            bits = (left.bit_length() * max(right, 0) if operator == "**"
                    else left.bit_length() + right.bit_length())
            if bits > MAX_INT_BITS:
                raise TemplateError("template number too large", kind="too_large")
        elif operator == "*":
            seq, n = (left, right) if _is_int(right) else (right, left)
            if isinstance(seq, sized) and _is_int(n) and b.weight(seq) * max(n, 0) > b.max_value:
                raise value_too_large()
        elif operator == "%" and isinstance(left, str):
            check_widths(left)
            check_ints(right if isinstance(right, tuple) else (right,))
        result = super().call_binop(context, operator, left, right)
        if operator == "%":
            result = taint_result(result, b.tainted(left) or b.tainted(right), b)
        b.check(result)
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        b = active_budget()
        if b is None:
            return super().call(__context, __obj, *args, **kwargs)
        b.tick()
        check_ints((*args, *kwargs.values()))
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        wrapped = getattr(__obj, "__wrapped__", None)  # the sandbox's str.format wrapper
        if wrapped is not None and name in ("format", "format_map"):
            check_widths(getattr(wrapped, "__self__", None))
        if isinstance(owner, str):
            estimate_str_call(owner, name, args, b)
            if name == "join" and len(args) == 1 and not kwargs:
                items = list(args[0])
                if not all(isinstance(x, str) for x in items):
                    raise TypeError("join() expects strings")
                if sum(map(len, items)) + len(owner) * len(items) > b.max_value:
                    raise value_too_large()
                return taint_join(owner, items)
        result = super().call(__context, __obj, *args, **kwargs)
        # Template-defined callables and TaintedStr's own methods keep spans exactly.
        own_method = vars(TaintedStr).get(name) if isinstance(owner, TaintedStr) else None
        exact = isinstance(__obj, (Macro, LoopContext)) or (
            own_method is not None and getattr(__obj, "__func__", None) is own_method)
        inputs = (owner, *args, *kwargs.values())
        result = taint_result(result, any(b.tainted(x) for x in inputs), b, exact=exact)
        b.check(result)
        return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def make_environment() -> SandboxEnvironment:
    """A new guarded environment; templates compiled with it render only within a budget."""
    # The same options transformers uses for chat templates (trim/lstrip blocks, loop controls,
    # tojson without HTML escaping, raise_exception, strftime_now).
    env = SandboxEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols, _GenerationTag],
        finalize=_finalize,
        cache_size=0,
    )
    env.globals.pop("lipsum", None)  # random text of a requested size: nothing to render here
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    env.filters["join"] = _join
    for name in _DROPPED_FILTERS:
        env.filters.pop(name, None)
    for name, func in list(env.filters.items()):
        env.filters[name] = _guard_filter(name, func)
    env.filters[LOOP_FILTER] = loop_guard
    env.filters[VALUE_FILTER] = value_guard
    return env
