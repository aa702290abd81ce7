"""The examples are not installed packages: their tests import them from examples/."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "faq_bot"))
