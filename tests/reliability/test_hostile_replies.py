"""What a hostile server sends back never costs a secret: a reply that echoes the key it was
sent (as a server echoing its Authorization header does) is stored, shown and exported with
the key replaced, in every file the run writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from katan_runs import TEST_KEY, svamp_mistakes, teacher_line
from strict_openai import ChatCall, StrictOpenAI

from fairspec.artifacts import read_jsonl
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.store.calls import KEY_REMOVED


@pytest.fixture
def server(katan_key) -> Iterator[StrictOpenAI]:
    with StrictOpenAI(key=TEST_KEY) as stand_in:
        yield stand_in


def echo_key(call: ChatCall) -> str:
    if call.prompt.startswith("Imagine you are a reviewer"):
        return f"Headers seen: Authorization: Bearer {TEST_KEY}. [4]"
    return f"Debug: your key is {TEST_KEY} (Authorization: Bearer {TEST_KEY}). The answer is 5."


def test_a_reply_that_echoes_the_key_is_stored_without_it(tmp_path, server, katan_run):
    server.reply = echo_key
    teachers = teacher_line("alpha", server.url, model="gpt-4o") + \
        teacher_line("beta", server.url, model="gpt-4.1")
    run = katan_run(teachers, base=tmp_path, mistakes=svamp_mistakes(2),
                    review="{threshold: 3, early_exit: false}").run
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        run_stage(run, "review", base_dir=tmp_path, store=store)
        assert store.secrets_removed == 2 * 2 * 2 + 2 * 2  # every rationale, feedback, review
    rationales = list(read_jsonl(Path(run.run_dir) / "teach" / "rationales.jsonl"))
    assert rationales and all(KEY_REMOVED in r["text"] and "The answer is 5." in r["text"]
                              for r in rationales)
    reviews = list(read_jsonl(Path(run.run_dir) / "review" / "reviews.jsonl"))
    assert reviews and all(r["score"] == 4 for r in reviews)  # the rest of the reply is kept
    # not in any file the run wrote: outputs, the store, its write-ahead log
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and TEST_KEY.encode() in p.read_bytes()]
    assert leaked == []
