"""Specs, compiled runs and llm-katan servers for the tests and ``bench/scale.py``: one copy.

Tests run with ``--import-mode=importlib``, so a helper module beside them is not importable
by itself: ``tests/conftest.py`` puts this folder on ``sys.path`` (and wraps these helpers in
fixtures: ``katan_key``, ``katan_run``); a script run by hand (``bench/scale.py``, or a test
file run as a child process) inserts ``tests/support`` itself, or gets it on ``PYTHONPATH``
(:data:`SUPPORT_DIR`).

The usual case, a committee of OpenAI teachers on llm-katan grading fake exam mistakes::

    teachers = committee(katan.openai_url, concurrency=2)       # alpha, beta, gamma
    made = compile_run(spec_text(teachers, review="{threshold: 4}"), tmp_path)
    write_mistakes(made.run_dir, svamp_mistakes(4))
    before = requests_served(katan)
    run_stage(made.run, "teach", base_dir=made.base, store=store)
    assert requests_served(katan) - before == store.count()
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fairspec.artifacts import is_done, write_jsonl
from fairspec.dsl import LoadedSpec, load_spec_text
from fairspec.plan import Environment, Plan, RunPlan, compile_plan

SUPPORT_DIR = Path(__file__).resolve().parent
REPO = SUPPORT_DIR.parents[1]
SVAMP_TRAIN = REPO / "fairspec" / "resources" / "data" / "svamp-mini" / "train.jsonl"

#: the variable the teachers' key is read from, and a key that is not real
KEY_ENV = "KATAN_KEY"
TEST_KEY = "sk-test-not-a-real-key-000000"
TEACHERS = ("alpha", "beta", "gamma")
#: the student of every teacher-stage spec: the tiny builtin model on the CPU
STUDENT = "{model: builtin:smollm2-135m-instruct, hardware: {device: cpu}}"
#: a review prompt whose echo ends as a reviewer giving 4 would (``prompts="{review: ...}"``):
#: the builtin P_pr gives no example score, so its echo has no score
ECHOED_REVIEW = Path(__file__).with_name("echoed_review.j2")


# -- spec text ------------------------------------------------------------------------------


def teacher_line(name: str, url: str, *, provider: str = "openai", model: str | None = None,
                 key_env: str = KEY_ENV, **options: Any) -> str:
    """One entry of ``teachers:`` (a YAML flow mapping and its newline). ``options`` are
    written as they are: ``concurrency=2``, ``price="{input_per_mtok: 1.0, ...}"``."""
    extra = "".join(f", {key}: {value}" for key, value in options.items())
    return (f'  - {{name: {name}, provider: {provider}, model: {model or "gpt-4o-" + name}, '
            f'base_url: "{url}", api_key_env: {key_env}{extra}}}\n')


def committee(url: str, names: tuple[str, ...] = TEACHERS, **options: Any) -> str:
    """``teachers:`` entries for OpenAI teachers ``names`` on ``url``, each with ``options``."""
    return "".join(teacher_line(name, url, **options) for name in names)


def spec_text(teachers: str, *, name: str = "katan-test", limit: str | None = None,
              student: str = STUDENT, **sections: Any) -> str:
    """A math spec on builtin svamp-mini with ``teachers`` (from :func:`committee` or
    :func:`teacher_line`); ``limit`` is the dataset's (``"{train: 8}"``), and every other
    keyword is a top-level section written as given (``review="{threshold: 4}"``,
    ``output_dir="runs"``)."""
    dataset = "path: builtin:data/svamp-mini" + (f", limit: {limit}" if limit else "")
    tail = "".join(f"{key}: {value}\n" for key, value in sections.items())
    return f"""
fairspec: 1
name: {name}
task:
  kind: math
  dataset: {{{dataset}}}
  fields: {{question: question_concat, answer: Answer}}
student: {student}
teachers:
{teachers}{tail}"""


def write_spec(folder: Path, text: str) -> Path:
    """``folder/spec.yaml`` holding ``text``, for a test that runs the command line."""
    path = folder / "spec.yaml"
    path.write_text(text)
    return path


# -- a compiled run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KatanRun:
    """The spec's main run, compiled, with its run folder moved to ``run_dir``; ``base`` is
    the spec's folder (the ``base_dir`` of ``run_stage``)."""

    loaded: LoadedSpec
    plan: Plan
    run: RunPlan
    base: Path

    @property
    def run_dir(self) -> Path:
        return Path(self.run.run_dir)

    @property
    def mistakes(self) -> Path:
        """The exam's mistakes, which the teach stage reads."""
        return self.run_dir / "exam" / "mistakes.jsonl"

    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def done(self, stage: str) -> bool:
        """The stage folder is complete for the stage's fingerprint."""
        return is_done(self.stage_dir(stage), self.run.stage(stage).fingerprint)


def compile_run(text: str, base: Path, *, run_dir: Path | None = None) -> KatanRun:
    """Load ``text`` with ``base`` as its folder and compile it for a CPU-only machine; the
    main run's folder is ``run_dir`` (``base/run`` when not given)."""
    loaded = load_spec_text(text, base_dir=base)
    plan = compile_plan(loaded, Environment())
    run = replace(plan.runs[0], run_dir=str(run_dir if run_dir is not None else base / "run"))
    return KatanRun(loaded, plan, run, base)


# -- fake exam mistakes -----------------------------------------------------------------------


def mistake(index: int, question: str, gold: float, *, answer: float = 7.0) -> dict[str, Any]:
    """One row of ``exam/mistakes.jsonl``: the student answered ``answer``, not ``gold``."""
    return {"index": index, "fields": {"question": question}, "gold": gold,
            "gold_text": f"{gold:g}", "output": f"The answer is {answer:g}.",
            "prediction": float(answer), "correct": False}


def svamp_mistakes(count: int, *, answer: float = 7.0) -> list[dict[str, Any]]:
    """Mistakes on the first ``count`` rows of builtin svamp-mini's train split."""
    rows = [json.loads(line) for line in SVAMP_TRAIN.read_text().splitlines()[:count]]
    assert len(rows) == count, f"svamp-mini has only {len(rows)} train rows"
    return [mistake(i, r["question_concat"], r["Answer"], answer=answer) for i, r in enumerate(rows)]


def write_mistakes(run_dir: Path, mistakes: list[dict[str, Any]]) -> Path:
    """Write ``run_dir/exam/mistakes.jsonl`` as the exam stage would (no manifest)."""
    path = Path(run_dir) / "exam" / "mistakes.jsonl"
    write_jsonl(path, mistakes)
    return path


# -- the server -------------------------------------------------------------------------------

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


@dataclass
class Katan:
    """A running llm-katan: ``openai_url`` for the OpenAI SDK, ``gemini_url`` for google-genai."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path | None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def gemini_url(self) -> str:
        return f"{self.root}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)


#: where :func:`free_port` looks: below Linux's ephemeral range (32768-60999), which the
#: system hands out to every outgoing connection (the teachers' HTTP calls included)
PORT_RANGE = (20000, 32000)


def free_port() -> int:
    """A port of 127.0.0.1 that is free now, for a server a test starts a while later. It is
    drawn below the ephemeral range: a port the system picked (``bind(0)``) could be handed
    to an outgoing connection before the server binds it (a torch.distributed rendezvous,
    opened only once the run reaches its training, lost its port so)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port of 127.0.0.1 in {PORT_RANGE}")


def start_server(log_dir: Path | None, *flags: str, providers: str = "openai,vertexai",
                 max_concurrent: int = 256, log_level: str = "warning") -> Katan:
    """Start llm-katan (echo backend) on a free port of 127.0.0.1 with extra ``flags`` and
    wait for its /health; its output goes to ``log_dir/llm-katan-<port>.log`` (nowhere when
    ``log_dir`` is None). Raises RuntimeError when it does not come up."""
    port = free_port()
    log = None if log_dir is None else log_dir / f"llm-katan-{port}.log"
    command = [
        sys.executable, "-m", "llm_katan.cli",
        "--model", "echo-model", "--backend", "echo",
        "--host", "127.0.0.1", "--port", str(port),
        "--providers", providers,
        "--max-concurrent", str(max_concurrent),
        "--disable-dashboard", "--stats-file", "",
        "--log-level", log_level,
        *flags,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_KATAN_")}
    if log is None:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    else:
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Katan(process, port, log)

    def tail() -> str:
        return log.read_text()[-2000:] if log is not None else "(no log kept)"

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llm-katan exited with {process.returncode}: {tail()}")
        try:
            with urllib.request.urlopen(f"{server.root}/health", timeout=1) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"llm-katan not ready in {START_TIMEOUT_S}s: {tail()}")


def requests_served(server: Katan | str) -> int:
    """Successful chat answers the server has sent (llm-katan counts only those), read from its
    /metrics; ``server`` is a :class:`Katan` or its root URL."""
    root = server if isinstance(server, str) else server.root
    with urllib.request.urlopen(f"{root}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return int(sum(float(v) for v in
                   re.findall(r"^llm_katan_requests_total\{[^}]*\} (\S+)", text, re.M)))
