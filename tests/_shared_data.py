"""Where the tests find the public data sets: ``$REDTIER_SHARED_DATA``, else ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REDTIER_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
"""The folder with ``xstest/``, ``pyrit/``, ``advbench/`` and the other public sets."""
