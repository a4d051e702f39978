"""Pieces the reliability tests share for runs against servers that take their time: a
teacher that answers slowly, and a spec on a recorded exam (no student model loads:
``fairspec run --until teach`` starts asking at once)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from katan_runs import spec_text
from strict_openai import ChatCall

RECORDED_STUDENT = ("{model: builtin:smollm2-135m-instruct, hardware: {device: cpu}, exam: {engine: "
                    "recorded, recorded: {path: exam.json, answer: pred, prediction: final, "
                    "only_mistakes: true, match: index, index_column: id}}}")


class SlowTeacher:
    """A stand-in's ``reply`` that takes ``delay_s`` per call and records (model, prompt)
    of each, so a test can act while a run is asking."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.asked: list[tuple[str, str]] = []

    def __call__(self, call: ChatCall) -> str:
        with self.lock:
            self.asked.append((call.model, call.prompt))
        time.sleep(self.delay_s)
        return "The answer is 5, because 2 + 3 = 5."


def recorded_exam_spec(folder: Path, teachers: str, *, mistakes: int = 4, **sections: str) -> list[str]:
    """``folder/spec.yaml`` on a recorded exam of ``mistakes`` wrong answers (and its
    ``exam.json``), review off, other ``sections`` as given (``katan_runs.spec_text``); the
    command that runs it up to the teach stage."""
    exam = [{"id": i, "pred": "I think it is 7.", "final": 7} for i in range(mistakes)]
    (folder / "exam.json").write_text(json.dumps(exam))
    sections = {"review": "{enabled: false}", "output_dir": "runs", **sections}
    (folder / "spec.yaml").write_text(spec_text(teachers, student=RECORDED_STUDENT, **sections))
    return [sys.executable, "-m", "fairspec.cli", "run", "spec.yaml", "--until", "teach"]
