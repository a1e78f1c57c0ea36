"""Prompt templates the user saved under a name, kept as plain files in a folder.

Each template is two files named after its slug: `<slug>.jinja` (the template, editable in any
text editor; a `.jinja` dropped into the folder by hand is listed too) and `<slug>.json` (its
name, the template it was made from, stop strings, default system prompt). The folder is chosen
by the caller (the app passes a platformdirs folder, tests a temporary one). Writes go to a
temporary file renamed into place, so a crash never leaves half a template.

Plain file I/O, no Qt: fine on the GUI thread (files are a few KiB) and in the CLI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from desktop.core.private_files import replace_file
from desktop.core.templates.prompt import PromptTemplate, reset_to_source

CUSTOM_PREFIX = "custom:"
_SIDECAR_FORMAT = "openlid-template"


def slugify(name: str) -> str:
    """File-safe id part for a template name: "My Gemma (v2)" -> "my-gemma-v2"."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    return slug[:60] or "template"


def _write_atomic(path: Path, text: str) -> None:
    replace_file(path, text.encode("utf-8"))


class TemplateStore:
    """The user's saved templates in `directory` (created when first saved to)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _slug(self, template_id: str) -> str:
        if not template_id.startswith(CUSTOM_PREFIX):
            raise KeyError(f"{template_id!r} is not a saved template")
        return template_id[len(CUSTOM_PREFIX):]

    def _load(self, jinja_path: Path) -> PromptTemplate:
        slug = jinja_path.stem
        meta: Mapping[str, Any] = {}
        sidecar = jinja_path.with_suffix(".json")
        if sidecar.is_file():
            try:
                loaded = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}  # a damaged sidecar loses the extras, never the template
            meta = loaded if isinstance(loaded, dict) else {}
        return PromptTemplate(
            id=CUSTOM_PREFIX + slug,
            name=str(meta.get("name") or slug),
            source="custom",
            text=jinja_path.read_text(encoding="utf-8"),
            stop=tuple(str(s) for s in meta.get("stop", ()) if s),
            default_system_prompt=str(meta.get("default_system_prompt", "")),
            bos_token=str(meta.get("bos_token", "")),
            eos_token=str(meta.get("eos_token", "")),
            based_on=meta.get("based_on") or None,
        )

    def templates(self) -> list[PromptTemplate]:
        """Saved templates, sorted by name."""
        if not self.directory.is_dir():
            return []
        found = [self._load(p) for p in self.directory.glob("*.jinja") if p.is_file()]
        return sorted(found, key=lambda t: t.name.lower())

    def get(self, template_id: str) -> PromptTemplate:
        path = self.directory / f"{self._slug(template_id)}.jinja"
        if not path.is_file():
            raise KeyError(f"no saved template {template_id!r}")
        return self._load(path)

    def save(self, name: str, text: str, *, based_on: str | None = None,
             stop: Iterable[str] = (), default_system_prompt: str = "",
             bos_token: str = "", eos_token: str = "") -> PromptTemplate:
        """Save (or overwrite) the template called `name`. Its syntax is not checked: a draft
        with errors can be saved and fixed later; rendering reports the errors."""
        if not name.strip():
            raise ValueError("a saved template needs a name")
        self.directory.mkdir(parents=True, exist_ok=True)
        slug = slugify(name)
        meta = {
            "format": _SIDECAR_FORMAT,
            "version": 1,
            "name": name.strip(),
            "based_on": based_on,
            "stop": [s for s in stop if s],
            "default_system_prompt": default_system_prompt,
            "bos_token": bos_token,
            "eos_token": eos_token,
        }
        # Template first: a crash between the two writes leaves a usable template.
        _write_atomic(self.directory / f"{slug}.jinja", text)
        _write_atomic(self.directory / f"{slug}.json",
                      json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
        return self.get(CUSTOM_PREFIX + slug)

    def save_as(self, template: PromptTemplate, name: str, text: str | None = None
                ) -> PromptTemplate:
        """Save an edited copy of any template (model, preset or saved) under `name`."""
        return self.save(
            name,
            template.text if text is None else text,
            based_on=template.based_on if template.source == "custom" else template.id,
            stop=template.stop,
            default_system_prompt=template.default_system_prompt,
            bos_token=template.bos_token,
            eos_token=template.eos_token,
        )

    def delete(self, template_id: str) -> None:
        slug = self._slug(template_id)
        found = False
        for suffix in (".jinja", ".json"):
            path = self.directory / f"{slug}{suffix}"
            if path.exists():
                path.unlink()
                found = True
        if not found:
            raise KeyError(f"no saved template {template_id!r}")

    def reset(self, template_id: str, *,
              model_templates: Mapping[str, str] | None = None) -> PromptTemplate:
        """The template a saved one was made from, unedited (KeyError if it no longer exists,
        e.g. a model template when another model is loaded)."""
        return reset_to_source(self.get(template_id), model_templates=model_templates,
                               custom=self.templates())
