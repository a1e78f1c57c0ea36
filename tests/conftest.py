"""Test-wide set-up: offscreen Qt, and every Openlid path redirected into a temporary folder."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Before any desktop import: settings, logs, models and the database go to a throwaway home.
os.environ["OPENLID_HOME"] = tempfile.mkdtemp(prefix="openlid-test-home-")
# huggingface_hub fixes its token paths at import: point them into the throwaway home too, so no
# test can read or overwrite a developer's real Hugging Face login.
os.environ["HF_HOME"] = os.path.join(os.environ["OPENLID_HOME"], "hf")
os.environ["HF_TOKEN_PATH"] = os.path.join(os.environ["HF_HOME"], "token")
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
