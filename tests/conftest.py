"""Test-wide set-up: offscreen Qt, and every Openlid path redirected into a temporary folder."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Before any desktop import: settings, logs, models and the database go to a throwaway home.
os.environ["OPENLID_HOME"] = tempfile.mkdtemp(prefix="openlid-test-home-")
