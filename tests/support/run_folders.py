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


def replay_spec(folder: Path, name: str) -> Path:
    """``folder/spec.yaml``: a tiny math spec (2 train and 2 test rows of builtin svamp-mini,
    the builtin model on the CPU) whose two teachers answer from an empty replay file, its
    runs in ``folder/runs``: a plan that compiles and validates, and never calls a teacher."""
    (folder / "calls.jsonl").write_text("")
    spec = folder / "spec.yaml"
    spec.write_text(f"""
fairspec: 1
name: {name}
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: 2, test: 2}}}}
  fields: {{question: question_concat, answer: Answer}}
student: {{model: builtin:smollm2-135m-instruct, hardware: {{device: cpu}}}}
teachers:
  - {{name: a, provider: replay, model: m, replay_file: calls.jsonl}}
  - {{name: b, provider: replay, model: n, replay_file: calls.jsonl}}
output_dir: runs
""")
    return spec
