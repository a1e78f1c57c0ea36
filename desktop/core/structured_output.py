"""Structured output: what a reply must look like (any JSON, a JSON schema, a GBNF grammar).

Pure, importable from any thread or process. `SamplerSettings` carries the kind and the texts;
this module holds their names, the checks that run before anything is generated (a schema must
be JSON: its line and column when it is not; a grammar must not be empty), the Sampling panel's
presets, the request fields that ask for one (OpenAI's `response_format`, llama-server's
`grammar` and `json_schema`), and what a StepRecord's grammar stage says in words ("grammar
removed 41% of the mass; the model wanted ' Sure'"). The engine (`engine.grammar`) turns the
settings into llama.cpp's grammar sampler; a GBNF grammar's syntax is judged there, by llama.cpp's
own parser, and its error comes back with a line and column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GRAMMAR_PRESETS", "KINDS", "KIND_LABELS", "MAX_TEXT", "NONE", "SCHEMA_PRESETS",
    "GrammarEffect", "grammar_effect", "line_col", "schema_problem", "settings_problem",
    "structured_from_request",
]

NONE, ANY_JSON, JSON_SCHEMA, GBNF = "none", "json", "json_schema", "gbnf"
KINDS: tuple[str, ...] = (NONE, ANY_JSON, JSON_SCHEMA, GBNF)
KIND_LABELS: dict[str, str] = {
    NONE: "Off", ANY_JSON: "Any JSON", JSON_SCHEMA: "JSON schema", GBNF: "GBNF grammar"}
MAX_TEXT = 200_000  # characters of a schema or grammar: far beyond any real one

SCHEMA_PRESETS: dict[str, str] = {
    "Person (name, age)": json.dumps({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 40},
                       "age": {"type": "integer", "minimum": 0, "maximum": 150}},
        "required": ["name", "age"], "additionalProperties": False}, indent=2),
    "List of strings": json.dumps({
        "type": "array", "items": {"type": "string", "maxLength": 40},
        "minItems": 1, "maxItems": 5}, indent=2),
    "Yes or no": json.dumps({
        "type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
        "required": ["answer"], "additionalProperties": False}, indent=2),
}
GRAMMAR_PRESETS: dict[str, str] = {
    "Yes or no": 'root ::= ("yes" | "no")\n',
    "A number": 'root ::= "-"? [0-9]+ ("." [0-9]+)?\n',
    "A short list": ('root ::= item item? item?\n'
                     'item ::= "- " [a-zA-Z ]{1,30} "\\n"\n'),
}


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def schema_problem(text: str) -> str:
    """Why `text` cannot be a JSON schema, with the line and column of a JSON error ("" when it
    can; whether every keyword can become a grammar is the engine's to say)."""
    if not text.strip():
        return "the JSON schema is empty"
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        return (f"the JSON schema is not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}")
    except RecursionError:
        return "the JSON schema nests too deeply"
    if not isinstance(schema, dict | bool):
        return f"a JSON schema must be an object (or true), not {type(schema).__name__}"
    return ""


def settings_problem(kind: Any, json_schema: Any, grammar: Any) -> str:
    """Why these structured-output settings cannot run ("" when they can, as far as core can
    tell: a grammar's syntax is judged by llama.cpp's parser in the engine)."""
    if kind not in KINDS:
        return f"structured_output must be one of {', '.join(KINDS)}"
    for name, value in (("json_schema", json_schema), ("grammar", grammar)):
        if not isinstance(value, str):
            return f"{name} must be a text"
        if len(value) > MAX_TEXT:
            return f"{name} is longer than {MAX_TEXT:,} characters"
    if kind == JSON_SCHEMA:
        return schema_problem(json_schema)
    if kind == GBNF and not grammar.strip():
        return "the GBNF grammar is empty (it needs at least a rule: root ::= ...)"
    return ""


def _schema_text(value: Any, name: str) -> str:
    if isinstance(value, dict | bool):
        return json.dumps(value, indent=2)
    raise ValueError(f"'{name}' must be a JSON object")


def structured_from_request(response_format: Any, json_schema: Any,
                            grammar: Any) -> dict[str, str]:
    """The `SamplerSettings` fields a request's `response_format` (OpenAI's), `json_schema` or
    `grammar` (llama-server's) ask for; {} for none. ValueError in words for a malformed one."""
    asked = [n for n, v in (("response_format", response_format), ("json_schema", json_schema),
                            ("grammar", grammar)) if v is not None]
    if response_format == {"type": "text"}:
        asked.remove("response_format")
    if len(asked) > 1:
        raise ValueError(f"give only one of {' and '.join(repr(a) for a in asked)}")
    if grammar is not None:
        if not isinstance(grammar, str) or not grammar.strip():
            raise ValueError("'grammar' must be a GBNF grammar text")
        return {"structured_output": GBNF, "grammar": grammar}
    if json_schema is not None:
        return {"structured_output": JSON_SCHEMA,
                "json_schema": _schema_text(json_schema, "json_schema")}
    if response_format is None or response_format == {"type": "text"}:
        return {}
    if not isinstance(response_format, dict) or not isinstance(response_format.get("type"), str):
        raise ValueError("'response_format' must be an object with a 'type'")
    kind = response_format["type"]
    if kind == "json_object":
        # llama-server takes an optional schema here too; OpenAI's own has none.
        schema = response_format.get("schema")
        if schema is None:
            return {"structured_output": ANY_JSON}
        return {"structured_output": JSON_SCHEMA,
                "json_schema": _schema_text(schema, "response_format.schema")}
    if kind == "json_schema":
        inner = response_format.get("json_schema")
        # OpenAI nests it as json_schema.schema; a top-level `schema` is taken too.
        schema = (inner.get("schema") if isinstance(inner, dict) and "schema" in inner
                  else response_format.get("schema"))
        if schema is None:
            raise ValueError("'response_format.json_schema.schema' is missing")
        return {"structured_output": JSON_SCHEMA,
                "json_schema": _schema_text(schema, "response_format.json_schema.schema")}
    raise ValueError(f"'response_format.type' must be text, json_object or json_schema, "
                     f"not {kind!r}")


@dataclass(frozen=True)
class GrammarEffect:
    """What the grammar did at one step."""

    removed_mass: float  # raw probability of the candidates it forbade (0..1)
    wanted: int | None  # the model's first choice when the grammar forbade it, else None

    @property
    def overrode(self) -> bool:
        return self.wanted is not None

    def words(self, piece: str = "") -> str:
        text = f"grammar removed {self.removed_mass:.0%} of the mass"
        if self.wanted is not None:
            text += (f"; the model wanted {piece!r}" if piece
                     else "; it forbade the model's first choice")
        return text


def grammar_effect(record: Any) -> GrammarEffect | None:
    """The grammar stage of a StepRecord in numbers; None when the step ran without one.

    Forbidding only masks tokens, so the model's first choice survives exactly when it heads the
    grammar stage's list (compared with the stage before it: penalties may have reordered the
    raw one); the mass removed is what the raw softmax gave the forbidden ones."""
    names = [s.name for s in record.stages]
    if "grammar" not in names or names.index("grammar") == 0:
        return None
    i = names.index("grammar")
    stage, before = record.stages[i], record.stages[i - 1]
    top = before.ids[0] if before.ids else None
    wanted = top if top is not None and (not stage.ids or stage.ids[0] != top) else None
    return GrammarEffect(max(0.0, before.mass - stage.mass), wanted)
