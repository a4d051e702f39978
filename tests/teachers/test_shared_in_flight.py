"""Two teachers with one configuration ask the same calls: the call store answers the
second from the first, and one on its way is joined, whichever teacher asks, so each
request is sent (and paid) once even when both ask at the same moment."""

from __future__ import annotations

from hostile import SlowTeacher
from katan_runs import TEST_KEY, svamp_mistakes, teacher_line
from strict_openai import StrictOpenAI

from fairspec.artifacts import read_jsonl
from fairspec.run.executor import run_stage
from fairspec.store import CallStore


def test_twin_teachers_asking_at_once_send_each_request_once(tmp_path, katan_key, katan_run):
    with StrictOpenAI(key=TEST_KEY) as server:
        server.reply = SlowTeacher(0.3)  # both teachers' workers are asking at the same time
        twins = teacher_line("alpha", server.url, model="gpt-4o") + \
            teacher_line("beta", server.url, model="gpt-4o")
        run = katan_run(twins, base=tmp_path, mistakes=svamp_mistakes(3), review="{enabled: false}").run
        with CallStore(tmp_path / "calls.sqlite") as store:
            stats = run_stage(run, "teach", base_dir=tmp_path, store=store)
        assert len(server.received) == 3 * 2  # one rationale and one feedback per mistake
    rows = list(read_jsonl(tmp_path / "run" / "teach" / "rationales.jsonl"))
    assert {r["teacher"] for r in rows} == {"alpha", "beta"} and len(rows) == 6
    by = {(r["index"], r["teacher"]): r["text"] for r in rows}
    assert all(by[(i, "alpha")] == by[(i, "beta")] for i in range(3))
    usage = stats["teachers"]
    assert usage["alpha"]["made"] + usage["beta"]["made"] == 6
    assert usage["alpha"]["cached"] + usage["beta"]["cached"] == 6


def test_a_twin_a_few_calls_behind_reuses_what_the_other_answered(tmp_path, katan_key, katan_run):
    """beta looks its calls up ahead (none stored yet), then asks them after alpha answered
    them: it must find them in the store, not send them again."""
    import asyncio

    from fairspec.teachers.committee import make_committee

    with StrictOpenAI(key=TEST_KEY) as server:
        twins = teacher_line("alpha", server.url, model="gpt-4o") + \
            teacher_line("beta", server.url, model="gpt-4o")
        run = katan_run(twins, base=tmp_path, mistakes=svamp_mistakes(2), review="{enabled: false}").run
        teachers = run.stage("teach").settings["teachers"]
        prompts = [[{"role": "user", "content": f"Question {i}: what is {i} + 1?"}] for i in range(3)]
        with CallStore(tmp_path / "calls.sqlite") as store:
            callers = make_committee(teachers, store, tmp_path)

            async def go():
                try:
                    callers["beta"].prefetch([(p, 0) for p in prompts])  # all misses now
                    for p in prompts:
                        await callers["alpha"].ask(p)
                    return [await callers["beta"].ask(p) for p in prompts]
                finally:
                    for caller in callers.values():
                        await caller.provider.aclose()
            answers = asyncio.run(go())
        assert len(server.received) == 3 and all(a.completed for a in answers)
        assert callers["beta"].usage.cached == 3 and callers["beta"].usage.made == 0
