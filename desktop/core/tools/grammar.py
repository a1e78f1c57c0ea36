"""GBNF grammars that make a model write a valid tool call in its own format.

Pure, importable from any thread or process. When a call must come (`tool_choice` "required" or
one named function) the reply can be held to a grammar: the call's wrapper in the model's format
(`<tool_call>…</tool_call>`, Llama's bare JSON object, Mistral's JSON array), the function's name
from the tools offered, and its arguments to the function's JSON schema. The grammar goes into
`SamplerSettings.grammar` (structured output "gbnf"), so llama.cpp's grammar sampler enforces it
and the chart shows the grammar stage as for any structured output. Mistral's `[TOOL_CALLS]` and
Llama's `<|python_tag|>` are control tokens the grammar cannot name by text, so those formats
are held to their JSON alone, which their parsers take without the marker.

The arguments' schema becomes GBNF here (llama.cpp's converter lives in the engine): objects
with their properties in order (the required ones always, the others optional), strings (with
min/max length, enum and const), numbers, integers, booleans, null, arrays of one item schema,
anyOf/oneOf and type lists. Any other keyword, a `$ref` or nesting deeper than `MAX_DEPTH` is
allowed any JSON value there; the parser and the tool itself still see what came.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from desktop.core.tools.calls import ToolChoice, ToolSpec
from desktop.core.tools.formats import LLAMA3, MISTRAL, ToolFormat

__all__ = ["MAX_DEPTH", "schema_rules", "tool_call_grammar"]

MAX_DEPTH = 12
MAX_PARALLEL = 4  # calls one constrained reply may hold

_BASE = r'''
value ::= object | array | string | number | ("true" | "false" | "null")
object ::= "{" ( string ": " value ( ", " string ": " value )* )? "}"
array ::= "[" ( value ( ", " value )* )? "]"
string ::= "\"" char* "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
number ::= integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
boolean ::= "true" | "false"
'''.strip()


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


class _Rules:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def add(self, hint: str, body: str) -> str:
        base = "".join(c if c.isalnum() else "-" for c in hint).strip("-").lower() or "r"
        name, n = base, 1
        while name in self.rules and self.rules[name] != body:
            n += 1
            name = f"{base}-{n}"
        self.rules[name] = body
        return name

    def schema(self, schema: Any, hint: str, depth: int = 0) -> str:
        """A rule (or an inline expression) for values matching `schema`."""
        if depth > MAX_DEPTH or not isinstance(schema, Mapping):
            return "value"
        if "const" in schema:
            return literal(json.dumps(schema["const"], ensure_ascii=False))
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = " | ".join(literal(json.dumps(v, ensure_ascii=False))
                                 for v in schema["enum"])
            return self.add(hint, options)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                options = " | ".join(self.schema(s, f"{hint}-{i}", depth + 1)
                                     for i, s in enumerate(schema[key]))
                return self.add(hint, options)
        kind = schema.get("type")
        if isinstance(kind, list) and kind:
            options = " | ".join(self.schema({**schema, "type": k}, f"{hint}-{k}", depth + 1)
                                 for k in kind if isinstance(k, str))
            return self.add(hint, options) if options else "value"
        if kind == "object" or (kind is None and isinstance(schema.get("properties"), Mapping)):
            return self._object(schema, hint, depth)
        if kind == "array":
            item = self.schema(schema.get("items"), f"{hint}-item", depth + 1)
            return self.add(hint, f'"[" ( {item} ( ", " {item} )* )? "]"')
        if kind == "string":
            return self._string(schema, hint)
        return {"integer": "integer", "number": "number", "boolean": "boolean",
                "null": '"null"'}.get(str(kind), "value")

    def _string(self, schema: Mapping[str, Any], hint: str) -> str:
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if not isinstance(lo, int) and not isinstance(hi, int):
            return "string"
        low = lo if isinstance(lo, int) and lo >= 0 else 0
        high = str(hi) if isinstance(hi, int) and hi >= low else ""
        return self.add(hint, f'"\\"" char{{{low},{high}}} "\\""')

    def _object(self, schema: Mapping[str, Any], hint: str, depth: int) -> str:
        props = schema.get("properties")
        if not isinstance(props, Mapping) or not props:
            return "object" if schema.get("additionalProperties", True) is not False \
                else self.add(hint, '"{}"')
        required = set(schema.get("required") or ())
        pairs = []
        for key, sub in props.items():
            value = self.schema(sub, f"{hint}-{key}", depth + 1)
            pairs.append((key in required, f'{literal(json.dumps(str(key)))} ": " {value}'))
        must = [kv for needed, kv in pairs if needed]
        may = [kv for needed, kv in pairs if not needed]
        if must:
            body = ' ", " '.join(must) + "".join(f' ( ", " {kv} )?' for kv in may)
            return self.add(hint, f'"{{" {body} "}}"')
        # None required: any subset, in order — choose the first one present, then the rest.
        starts = [kv + "".join(f' ( ", " {later} )?' for later in may[i + 1:])
                  for i, kv in enumerate(may)]
        return self.add(hint, '"{" ( ' + " | ".join(f"( {s} )" for s in starts) + ' )? "}"')


def schema_rules(schema: Any, name: str = "root") -> str:
    """A whole grammar whose `name` rule matches JSON values valid against `schema`."""
    rules = _Rules()
    top = rules.schema(schema, f"{name}-value")
    lines = [f"{name} ::= {top}", *(f"{k} ::= {v}" for k, v in rules.rules.items()), _BASE]
    return "\n".join(lines) + "\n"


def tool_call_grammar(fmt: ToolFormat, tools: Sequence[ToolSpec], choice: ToolChoice,
                      parallel: bool = True) -> str:
    """The grammar a forced call is held to ("" when the choice forces none)."""
    if not choice.forced:
        return ""
    chosen = [t for t in tools if not choice.function or t.name == choice.function]
    rules = _Rules()
    key = literal(f'"{fmt.arguments_key}": ')
    options = []
    for tool in chosen:
        params = tool.parameters or {}
        # A tool without properties takes no arguments (unless it says it takes any).
        empty = not params.get("properties") and params.get("additionalProperties") is not True
        args = '"{}"' if empty else rules.schema(params, f"args-{tool.name}")
        name = literal(f'{{"name": {json.dumps(tool.name)}, ')
        options.append(rules.add(f"call-{tool.name}", f'{name} {key} {args} "}}"'))
    call = " | ".join(options)
    more = f"{{0,{MAX_PARALLEL - 1}}}"
    if fmt is MISTRAL:
        root = f'"[" ( {call} ) ( ", " ( {call} ) ){more} "]"' if parallel \
            else f'"[" ( {call} ) "]"'
    elif fmt is LLAMA3:
        root = f"{call}"  # Llama 3.1's template takes one call per turn
    else:
        block = f'"<tool_call>\\n" ( {call} ) "\\n</tool_call>"'
        root = f'{block} ( "\\n" {block} ){more}' if parallel else block
    lines = [f"root ::= {root}", *(f"{k} ::= {v}" for k, v in rules.rules.items()), _BASE]
    return "\n".join(lines) + "\n"
