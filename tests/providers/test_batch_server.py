"""tests/support/batch_server.py driven by the official SDKs: the OpenAI Files + Batches API
(``openai``) and the Gemini Developer API's batches (``google-genai``), answered through
llm-katan, so a batch answer equals the online answer to the same request."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from batch_server import BatchServer
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

KEY = "sk-batch-test-key-0001"
GEMINI_MODEL = "gemini-2.5-flash"
QUESTIONS = ("what is 2 + 3", "name a prime above 10", "why is the sky blue")
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _steady(text: str) -> str:
    """llm-katan's echo without the clock time it quotes (``time=...Z``)."""
    return re.sub(r"time=\S+", "time=T", text)


@pytest.fixture
def server(katan) -> Iterator[BatchServer]:
    with BatchServer(upstream_openai=katan.openai_url, upstream_gemini=katan.gemini_url) as made:
        yield made


def _openai(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


def _gemini(url: str, key: str = KEY) -> genai.Client:
    return genai.Client(vertexai=False, api_key=key, http_options=types.HttpOptions(
        base_url=url, headers={"Authorization": f"Bearer {key}"},
        retry_options=types.HttpRetryOptions(attempts=1)))


def _body(question: str, index: int) -> dict[str, Any]:
    return {"model": "gpt-batch", "max_tokens": 20 + index, "temperature": 0.0,
            "messages": [{"role": "system", "content": "You are a teacher."},
                         {"role": "user", "content": question}]}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _lines(questions: tuple[str, ...] = QUESTIONS) -> list[dict[str, Any]]:
    return [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": _body(q, i)} for i, q in enumerate(questions)]


def _submit(client: openai.OpenAI, rows: list[dict[str, Any]], **metadata: str):
    upload = client.files.create(file=("input.jsonl", _jsonl(rows)), purpose="batch")
    return client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                 completion_window="24h", metadata=metadata or None)


def _wait(client: openai.OpenAI, batch_id: str, polls: int = 10):
    for _ in range(polls):
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
    raise AssertionError(f"batch {batch_id} still {batch.status} after {polls} polls")


def _read(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


# -- OpenAI ---------------------------------------------------------------------------------


def test_openai_batch_answers_equal_online_calls(server, katan) -> None:
    client = _openai(server.openai_url)
    server.polls_to_complete = 2
    upload = client.files.create(file=("input.jsonl", _jsonl(_lines())), purpose="batch")
    assert upload.id.startswith("file-") and upload.status == "processed"
    assert upload.bytes == len(_jsonl(_lines())) and upload.purpose == "batch"
    assert client.files.retrieve(upload.id).filename == "input.jsonl"
    assert client.files.content(upload.id).content == _jsonl(_lines())
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"run": "r1"})
    assert batch.id.startswith("batch_") and batch.status == "validating"
    assert batch.request_counts.total == 3 and batch.metadata == {"run": "r1"}

    first = client.batches.retrieve(batch.id)  # poll 1 of 2
    assert first.status == "in_progress" and first.output_file_id is None
    assert server.upstream_calls == 0
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at and done.in_progress_at
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    assert done.error_file_id is None and done.output_file_id.startswith("file-")

    rows = {row["custom_id"]: row for row in _read(client, done.output_file_id)}
    online = _openai(katan.openai_url)
    for i, question in enumerate(QUESTIONS):
        row = rows[f"q{i}"]
        assert row["id"].startswith("batch_req_") and row["error"] is None
        assert row["response"]["status_code"] == 200 and row["response"]["request_id"]
        answer = openai.types.chat.ChatCompletion.model_validate(row["response"]["body"])
        direct = online.chat.completions.create(**_body(question, i))
        assert _steady(answer.choices[0].message.content) == _steady(direct.choices[0].message.content)
        assert question in answer.choices[0].message.content

    assert server.uploads == 1 and server.upstream_calls == 3 and server.polls[batch.id] == 2
    created = server.created[0]
    assert (created.api, created.id, created.request_ids) == ("openai", batch.id, ["q0", "q1", "q2"])
    assert created.metadata == {"run": "r1"}
    assert client.batches.retrieve(batch.id).status == "completed"  # stays done
    assert server.upstream_calls == 3


def test_openai_expired_batch_keeps_the_answered_lines(server) -> None:
    client = _openai(server.openai_url)
    server.expire_next(1)
    batch = _wait(client, _submit(client, _lines()).id)
    assert batch.status == "expired" and batch.expired_at
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
    [answered] = _read(client, batch.output_file_id)
    assert answered["custom_id"] == "q0" and answered["response"]["status_code"] == 200
    expired = _read(client, batch.error_file_id)
    assert [row["custom_id"] for row in expired] == ["q1", "q2"]
    assert all(row["response"] is None and row["error"]["code"] == "batch_expired" for row in expired)
    assert server.upstream_calls == 1
    # one shot: the next batch completes in full
    assert _wait(client, _submit(client, _lines()).id).status == "completed"


def test_openai_failed_lines_go_to_the_error_file(server) -> None:
    client = _openai(server.openai_url)
    server.fail_next(1)
    batch = _wait(client, _submit(client, _lines()).id)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 1)
    [failed] = _read(client, batch.error_file_id)
    assert failed["custom_id"] == "q0" and failed["error"] is None
    assert failed["response"]["status_code"] == 500
    assert failed["response"]["body"]["error"]["type"] == "server_error"
    assert [row["custom_id"] for row in _read(client, batch.output_file_id)] == ["q1", "q2"]
    assert server.upstream_calls == 2


def test_openai_invalid_input_and_rejected_batches_fail(server) -> None:
    client = _openai(server.openai_url)
    rows = _lines()
    rows[2]["custom_id"] = "q0"
    bad = client.batches.retrieve(_submit(client, rows).id)
    assert bad.status == "failed" and bad.failed_at and bad.output_file_id is None
    [error] = bad.errors.data
    assert (error.code, error.line) == ("duplicate_custom_id", 3)

    server.reject_next("quota exceeded for this project")
    created = _submit(client, _lines())
    assert created.status == "validating"
    server.hold()  # a failure shows however the server is held
    rejected = client.batches.retrieve(created.id)
    assert rejected.status == "failed"
    assert rejected.errors.data[0].message == "quota exceeded for this project"
    assert server.upstream_calls == 0 and len(server.created) == 2


def test_openai_hold_list_and_cancel(server) -> None:
    client = _openai(server.openai_url)
    server.hold()
    held = _submit(client, _lines(), run="held-run")
    others = [_submit(client, _lines()[:1], run=f"other-{i}") for i in range(3)]
    for _ in range(3):
        assert client.batches.retrieve(held.id).status == "in_progress"
    found = [b for b in client.batches.list(limit=2) if (b.metadata or {}).get("run") == "held-run"]
    assert [b.id for b in found] == [held.id]  # on the second page: newest first, 2 a page
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == [others[2].id, others[1].id] and page.has_more

    assert client.batches.cancel(held.id).status == "cancelling"
    cancelled = client.batches.retrieve(held.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    assert cancelled.output_file_id is None and cancelled.request_counts.total == 3
    server.answer_on_cancel = 1
    partial = _submit(client, _lines())
    client.batches.cancel(partial.id)
    kept = client.batches.retrieve(partial.id)
    assert kept.status == "cancelled" and len(_read(client, kept.output_file_id)) == 1
    server.release()
    assert _wait(client, others[0].id).status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


# -- Gemini ---------------------------------------------------------------------------------


def _requests(questions: tuple[str, ...] = QUESTIONS[:2]) -> list[types.InlinedRequest]:
    return [types.InlinedRequest(
        contents=[{"role": "user", "parts": [{"text": q}]}],
        config=types.GenerateContentConfig(system_instruction="You are a teacher.",
                                           max_output_tokens=20 + i, temperature=0.0),
        metadata={"key": f"g{i}"}) for i, q in enumerate(questions)]


def _gemini_wait(client: genai.Client, name: str, polls: int = 10) -> types.BatchJob:
    for _ in range(polls):
        job = client.batches.get(name=name)
        if job.done:
            return job
    raise AssertionError(f"{name} still {job.state} after {polls} polls")


def test_gemini_batch_answers_equal_online_calls(server, katan) -> None:
    server.polls_to_complete = 2

    async def main() -> tuple[types.BatchJob, types.BatchJob, types.BatchJob]:
        client = _gemini(server.gemini_url)
        job = await client.aio.batches.create(model=GEMINI_MODEL, src=_requests(),
                                              config={"display_name": "gem-run"})
        running = await client.aio.batches.get(name=job.name)
        return job, running, await client.aio.batches.get(name=job.name)

    job, running, done = asyncio.run(main())
    assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "gem-run" and job.model == f"models/{GEMINI_MODEL}"
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.dest is None
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done and done.end_time
    responses = done.dest.inlined_responses
    assert [r.metadata for r in responses] == [{"key": "g0"}, {"key": "g1"}]

    online = _gemini(katan.gemini_url)
    for i, (request, response) in enumerate(zip(_requests(), responses, strict=True)):
        assert response.error is None
        direct = online.models.generate_content(model=GEMINI_MODEL, contents=request.contents,
                                                config=request.config)
        assert _steady(response.response.text) == _steady(direct.text)
        # the system instruction and generation config went upstream too
        assert f"messages=2 max_tokens={20 + i} temperature=0.0" in direct.text
        assert response.response.usage_metadata.total_token_count
    # forwarded to the path the SDK's own generate_content uses (api_version v1 by default)
    assert server.upstream_paths == [f"/v1/models/{GEMINI_MODEL}:generateContent"] * 2
    created = server.created[0]
    assert (created.api, created.id, created.request_ids) == ("gemini", job.name, ["g0", "g1"])
    assert created.display_name == "gem-run" and server.polls[job.name] == 2


def test_gemini_expired_and_failed_requests(server) -> None:
    client = _gemini(server.gemini_url)
    server.expire_next(1)
    expired = _gemini_wait(client, client.batches.create(model=GEMINI_MODEL, src=_requests()).name)
    assert expired.state == types.JobState.JOB_STATE_EXPIRED
    first, second = expired.dest.inlined_responses
    assert first.response.text and first.error is None and first.metadata == {"key": "g0"}
    assert second.response is None and second.error.code == 4 and second.metadata == {"key": "g1"}

    server.fail_next(1, status=429)
    plain = [{"contents": "why is the sky blue"}, {"contents": "what is 2 + 3"}]  # no metadata
    failed = _gemini_wait(client, client.batches.create(model=GEMINI_MODEL, src=plain).name)
    assert failed.state == types.JobState.JOB_STATE_SUCCEEDED
    first, second = failed.dest.inlined_responses
    assert first.error.code == 8 and "429" in first.error.message and first.response is None
    assert "what is 2 + 3" in second.response.text and second.metadata is None
    assert server.created[1].request_ids == ["0", "1"] and server.upstream_calls == 2


def test_gemini_reject_hold_cancel_list_delete(server) -> None:
    client = _gemini(server.gemini_url)
    server.reject_next("model overloaded")
    rejected = _gemini_wait(client, client.batches.create(model=GEMINI_MODEL, src=_requests()).name)
    assert rejected.state == types.JobState.JOB_STATE_FAILED and rejected.dest is None
    assert server.batch(rejected.name)["error"]["message"] == "model overloaded"  # the SDK drops it

    server.hold()
    held = client.batches.create(model=GEMINI_MODEL, src=_requests(), config={"display_name": "held"})
    for _ in range(3):
        assert client.batches.get(name=held.name).state == types.JobState.JOB_STATE_RUNNING
    names = [j.name for j in client.batches.list(config={"page_size": 1}) if j.display_name == "held"]
    assert names == [held.name]
    client.batches.cancel(name=held.name)
    assert client.batches.get(name=held.name).state == types.JobState.JOB_STATE_CANCELLED
    client.batches.delete(name=held.name)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.batches.get(name=held.name)
    assert caught.value.code == 404
    assert server.upstream_calls == 0


def test_a_killed_client_process_leaves_the_server_working(server) -> None:
    """A child process creates a batch and is killed -9; the batch is there for the next."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", (
        "import json, sys, openai\n"
        f"c = openai.OpenAI(base_url={server.openai_url!r}, api_key={KEY!r}, max_retries=0)\n"
        f"f = c.files.create(file=('in.jsonl', {_jsonl(_lines())!r}), purpose='batch')\n"
        "b = c.batches.create(input_file_id=f.id, endpoint='/v1/chat/completions', "
        "completion_window='24h')\n"
        "print(b.id, flush=True)\n"
        "import time; time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        batch_id = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait(timeout=10)
    client = _openai(server.openai_url)
    batch = _wait(client, batch_id)
    assert batch.status == "completed" and len(_read(client, batch.output_file_id)) == 3
    assert server.uploads == 1 and server.created[0].id == batch_id


# -- keys -----------------------------------------------------------------------------------


def test_keys_are_checked_and_forwarded_upstream(start_katan) -> None:
    upstream = start_katan("--validate-keys", "--api-keys", f"openai={KEY},vertexai={KEY}")
    with BatchServer(upstream_openai=upstream.openai_url, upstream_gemini=upstream.gemini_url,
                     key=KEY) as server:
        with pytest.raises(openai.AuthenticationError):
            _openai(server.openai_url, key="wrong").files.list()
        wrong = _gemini(server.gemini_url, key="wrong")  # kept: a dropped Client closes its transport
        with pytest.raises(genai_errors.ClientError) as caught:
            wrong.batches.get(name="batches/x")
        assert caught.value.code == 401

        client = _openai(server.openai_url)
        batch = _wait(client, _submit(client, _lines()[:1]).id)
        assert batch.status == "completed" and batch.error_file_id is None
        gemini = _gemini(server.gemini_url)
        job = _gemini_wait(gemini, gemini.batches.create(model=GEMINI_MODEL, src=_requests()).name)
        assert all(r.response is not None for r in job.dest.inlined_responses)

        server.upstream_key = "not-the-key"  # upstream now refuses: per-request errors
        batch = _wait(client, _submit(client, _lines()[:1]).id)
        [refused] = _read(client, batch.error_file_id)
        assert refused["response"]["status_code"] == 401
        job = _gemini_wait(gemini, gemini.batches.create(model=GEMINI_MODEL, src=_requests()).name)
        assert [r.error.code for r in job.dest.inlined_responses] == [16, 16]
