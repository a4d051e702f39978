"""A run stopped by SIGTERM (a scheduler, ``kill``) ends as Ctrl-C does: a message, exit 143,
what was answered is saved and not asked again; and a server's error message full of
terminal control sequences reaches the terminal as text, not as control."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hostile import SlowTeacher, recorded_exam_spec
from katan_runs import KEY_ENV, TEST_KEY, teacher_line
from standin_http import send_json
from strict_openai import StrictOpenAI


def write_spec(tmp_path, url: str, mistakes: int = 4) -> list[str]:
    return recorded_exam_spec(tmp_path, teacher_line("alpha", url, model="gpt-4o", concurrency=1,
                                                     max_retries=0), mistakes=mistakes)


@pytest.mark.slow
def test_sigterm_stops_a_run_like_ctrl_c_and_the_rerun_pays_nothing_twice(tmp_path):
    env = {**os.environ, KEY_ENV: TEST_KEY}
    with StrictOpenAI(key=TEST_KEY) as server:
        server.reply = SlowTeacher(0.5)
        command = write_spec(tmp_path, server.url)
        child = subprocess.Popen(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(server.reply.asked) < 2:
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 143, stderr
        assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
        asked_before = len(server.reply.asked)
        assert asked_before < 8  # 4 mistakes x (rationale + feedback): stopped part way
        done = subprocess.run(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    # every call asked once over both runs (at most the one on its way at the signal again)
    asked = server.reply.asked
    assert len(set(asked)) == 8 and len(asked) - len(set(asked)) <= 1


class Hostile(BaseHTTPRequestHandler):
    MESSAGE = "bad model \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b\x1b[0m\r done"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, 404, {"error": {"message": self.MESSAGE, "type": "invalid_request_error",
                                        "code": "model_not_found"}})


def test_control_sequences_in_a_servers_message_never_reach_the_terminal(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        command = write_spec(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/v1", 1)
        done = subprocess.run(command, cwd=tmp_path, env={**os.environ, KEY_ENV: TEST_KEY},
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    err = done.stderr.decode("utf-8", errors="replace")
    assert done.returncode == 2 and "bad model" in err, err
    raw = done.stderr + done.stdout
    assert not any(byte in raw for byte in (b"\x1b", b"\x07", b"\r", b"\xc2\x9b")), raw[-600:]
    assert "\\x1b]0;pwned\\x07" in err  # shown, as text


def test_a_template_that_fails_at_a_row_is_exit_2_naming_it(tmp_path):
    rows = [json.loads(line) for line in (Path(__file__).parents[2] / "fairspec/resources/data/"
                                          "svamp-mini/train.jsonl").read_text().splitlines()]
    word = rows[2]["question_concat"].split()[0]  # row 2's first word, in no earlier row's
    assert not any(row["question_concat"].startswith(word + " ") for row in rows[:2])
    (tmp_path / "rationale.j2").write_text(
        "{{ question }} {% if question.startswith('" + word + " ') %}{{ 1 / 0 }}{% endif %}")
    with StrictOpenAI(key=TEST_KEY) as server:
        command = recorded_exam_spec(tmp_path, teacher_line("alpha", server.url, model="gpt-4o"),
                                     prompts="{rationale: rationale.j2}")
        done = subprocess.run(command, cwd=tmp_path, env={**os.environ, KEY_ENV: TEST_KEY},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "prompts.rationale, row 2: ZeroDivisionError: division by zero" in done.stderr
