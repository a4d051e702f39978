"""The worker pool takes its jobs from a generator, and the caller's reads for reuse are
batched ahead (prefetch): one store query per chunk, the stored answers reused, none paid
twice, even for a call asked twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fairspec.providers.base import ChatProvider, ChatRequest, ChatResult
from fairspec.store import CallStore
from fairspec.teachers.caller import TeacherCaller
from fairspec.teachers.pool import looked_up, run_per_teacher


class Echo(ChatProvider):
    """Answers each request with its prompt after a short wait; counts what it was asked."""

    kind = "echo"

    def __init__(self) -> None:
        super().__init__(name="echo", model="m", base_url=None)
        self.asked: list[str] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        prompt = request.messages[0]["content"]
        self.asked.append(prompt)
        await asyncio.sleep(0.001)
        return ChatResult(text=f"re: {prompt}", finish_reason="stop", status="ok",
                          input_tokens=3, output_tokens=3, latency_s=0.001, attempts=1)

    async def aclose(self) -> None:
        pass


def caller_for(store: CallStore, provider: Echo) -> TeacherCaller:
    return TeacherCaller(name="echo", provider_kind="openai", base_url=None, model="m",
                         settings={"temperature": 0.0}, store=store, provider=provider)


def test_workers_take_jobs_from_a_generator_as_they_go() -> None:
    produced: list[int] = []
    most_ahead = 0
    handled: list[int] = []

    def jobs():
        for i in range(200):
            produced.append(i)
            yield i

    async def handle(teacher: str, job: int) -> None:
        nonlocal most_ahead
        most_ahead = max(most_ahead, len(produced) - len(handled))
        await asyncio.sleep(0)
        handled.append(job)

    fatal = asyncio.run(run_per_teacher({"t": jobs()}, handle, {"t": 4}))
    assert fatal == {} and sorted(handled) == list(range(200))
    assert most_ahead <= 4  # no more jobs out than workers: the generator is never drained


def test_prefetched_calls_are_asked_without_a_store_read_each(tmp_path: Path, monkeypatch) -> None:
    provider = Echo()
    prompts = [f"q{i}" for i in range(40)] + ["q3", "q7"]  # two asked twice
    with CallStore(tmp_path / "calls.sqlite") as store:
        first = caller_for(store, provider)

        async def ask_all(caller: TeacherCaller) -> list[str]:
            async def handle(_: str, messages: list[dict[str, str]]) -> None:
                answers.append((await caller.ask(messages)).text)

            answers: list[str] = []
            jobs = looked_up(caller, ([{"role": "user", "content": p}] for p in prompts),
                             lambda messages: (messages, 0), chunk=8)
            await run_per_teacher({"echo": jobs}, handle, {"echo": 4})
            return answers

        stored_reads = []
        real_get = store.get
        monkeypatch.setattr(store, "get", lambda key, **kw: stored_reads.append(key)
                            or real_get(key, **kw))
        answers = asyncio.run(ask_all(first))
        assert sorted(answers) == sorted(f"re: {p}" for p in prompts)
        assert sorted(provider.asked) == sorted(set(prompts))  # q3 and q7 paid once
        assert first.usage.made == 40 and first.usage.cached == 2
        assert len(stored_reads) <= 2  # only a repeat asked after its chunk was looked up

        # a rerun: every answer comes from the chunks looked up, no read per call, none paid
        stored_reads.clear()
        again = caller_for(store, provider)
        answers = asyncio.run(ask_all(again))
        assert sorted(answers) == sorted(f"re: {p}" for p in prompts)
        assert len(provider.asked) == 40 and again.usage.made == 0
        assert again.usage.cached == len(prompts) and stored_reads == []
        assert store.commits.records == 40  # each answer stored once, through the group commit
