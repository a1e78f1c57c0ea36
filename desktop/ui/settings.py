"""AppSettings: the one typed class over QSettings. GUI thread only; nothing else builds QSettings.

Stored as an INI file in Openlid's data folder (so OPENLID_HOME redirects it, for tests and
portable installs). Structured values (sampler and load settings) are stored as JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from desktop.core import paths
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings


class AppSettings:
    def __init__(self) -> None:
        self._q = QSettings(str(paths.data_dir() / "settings.ini"), QSettings.Format.IniFormat)

    def _get(self, key: str, default: Any) -> Any:
        value = self._q.value(key, default)
        return default if value is None else value

    def _json(self, key: str) -> dict[str, Any] | None:
        text = self._q.value(key, "")
        if not text:
            return None
        try:
            data = json.loads(str(text))
        except ValueError:
            return None  # a hand-edited or damaged value: fall back to defaults
        return data if isinstance(data, dict) else None

    def sync(self) -> None:
        self._q.sync()

    # --- model and engine ---

    @property
    def last_model(self) -> str:
        return str(self._get("model/last", ""))

    @last_model.setter
    def last_model(self, path: str) -> None:
        self._q.setValue("model/last", path)

    @property
    def load_settings(self) -> LoadSettings:
        data = self._json("model/load_settings")
        try:
            return LoadSettings.from_json(data).validated() if data else LoadSettings()
        except (TypeError, ValueError):
            return LoadSettings()

    @load_settings.setter
    def load_settings(self, value: LoadSettings) -> None:
        self._q.setValue("model/load_settings", json.dumps(value.to_json()))

    @property
    def embedding_model(self) -> str:
        """The embedding GGUF that searches attached documents by meaning ("": BM25)."""
        return str(self._get("documents/embedding_model", ""))

    @embedding_model.setter
    def embedding_model(self, path: str) -> None:
        self._q.setValue("documents/embedding_model", path)

    @property
    def sampler_settings(self) -> SamplerSettings:
        data = self._json("sampling/settings")
        try:
            return SamplerSettings.from_json(data).validated() if data else SamplerSettings()
        except (TypeError, ValueError):
            return SamplerSettings()

    @sampler_settings.setter
    def sampler_settings(self, value: SamplerSettings) -> None:
        self._q.setValue("sampling/settings", json.dumps(value.to_json()))

    def user_sampler_presets(self) -> dict[str, SamplerSettings]:
        data = self._json("sampling/user_presets") or {}
        out = {}
        for name, values in data.items():
            try:
                out[name] = SamplerSettings.from_json(values).validated()
            except (TypeError, ValueError):
                continue
        return out

    def save_user_sampler_preset(self, name: str, value: SamplerSettings) -> None:
        data = self._json("sampling/user_presets") or {}
        data[name] = value.to_json()
        self._q.setValue("sampling/user_presets", json.dumps(data))

    # --- prompt ---

    def user_prompt_presets(self, kind: str) -> dict[str, str]:
        """User-saved texts for the prompt panel; kind is "system" or "instructions"."""
        data = self._json(f"prompt/user_presets_{kind}") or {}
        return {str(k): str(v) for k, v in data.items()}

    def save_user_prompt_preset(self, kind: str, name: str, text: str) -> None:
        data = self._json(f"prompt/user_presets_{kind}") or {}
        data[name] = text
        self._q.setValue(f"prompt/user_presets_{kind}", json.dumps(data))

    @property
    def system_prompt(self) -> str:
        return str(self._get("prompt/system", ""))

    @system_prompt.setter
    def system_prompt(self, text: str) -> None:
        self._q.setValue("prompt/system", text)

    @property
    def custom_instructions(self) -> str:
        return str(self._get("prompt/instructions", ""))

    @custom_instructions.setter
    def custom_instructions(self, text: str) -> None:
        self._q.setValue("prompt/instructions", text)

    @property
    def instructions_placement(self) -> str:
        """Where custom instructions go: "system" (with the system prompt) or "first_user"."""
        value = str(self._get("prompt/instructions_placement", "system"))
        return value if value in ("system", "first_user") else "system"

    @instructions_placement.setter
    def instructions_placement(self, value: str) -> None:
        self._q.setValue("prompt/instructions_placement", value)

    @property
    def template_id(self) -> str:
        return str(self._get("prompt/template_id", ""))

    @template_id.setter
    def template_id(self, value: str) -> None:
        self._q.setValue("prompt/template_id", value)

    # --- window ---

    def window_geometry(self) -> QByteArray | None:
        value = self._q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self._q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._q.setValue("window/geometry", geometry)
        self._q.setValue("window/state", state)

    @property
    def theme(self) -> str:
        """View → Theme: "system", "light" or "dark"."""
        value = str(self._get("window/theme", "system"))
        return value if value in ("system", "light", "dark") else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        self._q.setValue("window/theme", value)

    @property
    def welcome_shown(self) -> bool:
        return str(self._get("app/welcome_shown", "false")).lower() == "true"

    @welcome_shown.setter
    def welcome_shown(self, value: bool) -> None:
        self._q.setValue("app/welcome_shown", "true" if value else "false")

    @property
    def chart_top_n(self) -> int:
        try:
            return max(10, min(200, int(self._get("chart/top_n", 30))))
        except (TypeError, ValueError):
            return 30

    @chart_top_n.setter
    def chart_top_n(self, value: int) -> None:
        self._q.setValue("chart/top_n", int(value))

    @property
    def chart_view(self) -> dict[str, bool]:
        """The chart's view options: log scale, fitted y axis, legend shown ({} = defaults)."""
        try:
            data = json.loads(str(self._get("chart/view", "{}")))
        except (TypeError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, bool)}

    @chart_view.setter
    def chart_view(self, value: dict[str, bool]) -> None:
        self._q.setValue("chart/view", json.dumps(dict(value)))
