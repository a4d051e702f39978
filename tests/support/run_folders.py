"""Writing hand-made run-folder artifacts for report tests (JSON or JSON lines by suffix)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PNG = b"\x89PNG\r\n\x1a\n"


def write(path: Path, data: Any) -> None:
    """``data`` as JSON lines (a ``.jsonl`` path: one row per item) or as one JSON value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in data))
    else:
        path.write_text(json.dumps(data))
