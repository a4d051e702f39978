"""Teacher outputs that are empty, huge, not valid UTF-8, or carry no score: recorded as what
they are, never a traceback, never a stage marked done on a half result.

A small OpenAI-compatible HTTP server (the standard library's, in a thread) answers by the
case word in the question: ``CASE-EMPTY`` an empty message, ``CASE-HUGE`` 300,000
characters, ``CASE-BYTES`` a body with bytes that are not UTF-8, ``CASE-CONTROL`` text full of
control characters and lone surrogate escapes; reviews get prose with no score.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from katan_runs import mistake, spec_text, teacher_line, write_mistakes, write_spec

from fairspec.artifacts import read_jsonl

HUGE = 300_000
CASES = ("CASE-OK", "CASE-EMPTY", "CASE-HUGE", "CASE-BYTES", "CASE-CONTROL")


def reply_body(model: str, content: str) -> bytes:
    return json.dumps({
        "id": "x", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }).encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 — http.server's name
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = request["messages"][-1]["content"]
        model = request["model"]
        if "peer-review" in prompt:
            body = reply_body(model, "A thoughtful rationale; I have no number to give.")
        elif "CASE-EMPTY" in prompt:
            body = reply_body(model, "")
        elif "CASE-HUGE" in prompt:
            body = reply_body(model, "The answer is 3. " + "x" * HUGE)
        elif "CASE-BYTES" in prompt:
            body = reply_body(model, "The answer is PLACEHOLDER.").replace(b"PLACEHOLDER", b"\xff\xfe\xc3")
        elif "CASE-CONTROL" in prompt:
            body = reply_body(model, "The answer\x00 is \x07 4 \ud800 \u202e done")
        else:
            body = reply_body(model, "The answer is 5, because 2 + 3 = 5.")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def odd_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_odd_teacher_outputs_are_recorded_not_fatal(tmp_path, odd_server) -> None:
    teachers = "".join(teacher_line(n, odd_server, model=f"m-{n}", key_env="ODD_KEY", max_retries=1)
                       for n in ("one", "two"))
    spec = write_spec(tmp_path, spec_text(teachers, name="odd", output_dir="runs"))
    write_mistakes(tmp_path / "runs" / "odd", [
        mistake(i, f"{case}: Bob has 5 apples. How many?", 5.0, answer=4) for i, case in enumerate(CASES)])
    env = {**os.environ, "ODD_KEY": "sk-test-not-a-real-key-000000"}
    outcomes = {}
    for stage in ("teach", "review", "build"):
        done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec), "--only", stage],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        outcomes[stage] = done
    teach_dir = tmp_path / "runs" / "odd" / "teach"
    if outcomes["teach"].returncode != 0:  # only a failure that names the calls may stop it
        assert "failed after all retries" in outcomes["teach"].stderr
        assert not (teach_dir / "manifest.json").exists()
        pytest.fail("teach stopped: " + outcomes["teach"].stderr[-500:])
    rows = {(r["index"], r["teacher"], r["role"]): r for name in ("rationales.jsonl", "feedback.jsonl")
            for r in read_jsonl(teach_dir / name)}
    assert len(rows) == len(CASES) * 2 * 2  # every (mistake, teacher, role) is there
    by_case = {CASES[i]: r for (i, t, role), r in rows.items() if t == "one" and role == "rationale"}
    assert by_case["CASE-OK"]["status"] == "ok"
    assert by_case["CASE-EMPTY"]["status"] == "empty" and by_case["CASE-EMPTY"]["text"] == ""
    assert by_case["CASE-HUGE"]["status"] == "ok" and len(by_case["CASE-HUGE"]["text"]) > HUGE
    assert "\ufffd" in by_case["CASE-BYTES"]["text"]  # undecodable bytes replaced, kept visible
    assert "\x00" in by_case["CASE-CONTROL"]["text"]  # stored as sent, JSON-escaped
    # review: every usable rationale was reviewed, no score could be read, nothing accepted
    review_dir = tmp_path / "runs" / "odd" / "review"
    assert outcomes["review"].returncode == 0, outcomes["review"].stderr[-2000:]
    stats = json.loads((review_dir / "stats.json").read_text())
    assert stats["accepted"] == 0 and stats["invalid_scores"] == stats["reviews_made"] > 0
    assert stats["reviewable"] == sum(1 for r in rows.values() if r["role"] == "rationale"
                                      and r["status"] in ("ok", "truncated") and r["text"].strip())
    # build: nothing accepted is said plainly, and the stage is done (an empty set is a result)
    assert outcomes["build"].returncode == 0, outcomes["build"].stderr[-2000:]
    built = json.loads((tmp_path / "runs" / "odd" / "build" / "stats.json").read_text())
    assert built["examples"] == 0 and built["samples"] == 0
